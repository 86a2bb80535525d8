"""The one guarded image decoder and the one list of image suffixes (fercore.images)."""
import time

import cv2
import numpy as np
import pytest

from fercore.images import (
    ALLOWED_FORMATS, IMAGE_SUFFIXES, IMPORT_FORMATS, ImageDecodeError, decode_image, is_image_name,
)
from inference.synthetic import encode, exif_jpeg, png_bomb


def refusal(data: bytes, **kwargs) -> str:
    with pytest.raises(ImageDecodeError) as refused:
        decode_image(data, max_pixels=kwargs.pop("max_pixels", 50_000_000), **kwargs)
    return refused.value.code


def test_names_are_images_by_their_suffix_in_any_case():
    assert is_image_name("happy/a.JPG") and is_image_name("b.webp") and is_image_name("scan.tiff")
    assert not is_image_name("README.md") and not is_image_name("happy/noext")
    assert {".jpg", ".jpeg", ".png", ".webp", ".bmp"} <= IMAGE_SUFFIXES  # what serving takes is in the one list


def test_a_pixel_bomb_is_refused_from_its_header_before_decoding():
    started = time.perf_counter()
    assert refusal(png_bomb(30000, 30000)) == "too_many_pixels"
    assert refusal(png_bomb(12000, 100), max_pixels=1_000_000) == "too_many_pixels"
    assert time.perf_counter() - started < 1.0


def test_empty_damaged_and_unknown_inputs_are_refused_with_their_codes():
    jpeg = encode(np.full((64, 64, 3), 128, np.uint8), ".jpg")
    assert refusal(b"") == "empty"
    assert refusal(b"plain text, no pixels") == "not_an_image"
    assert refusal(jpeg[: len(jpeg) // 2]) == "truncated"
    png = encode(np.zeros((8, 8), np.uint8), ".png")
    assert refusal(png, formats={"JPEG": "JPEG"}) == "unsupported_format"  # each caller names its formats
    assert set(ALLOWED_FORMATS) <= set(IMPORT_FORMATS)


def test_photos_come_upright_and_16_bit_scans_keep_their_high_byte():
    image = np.zeros((40, 60, 3), np.uint8)
    image[:, :20] = 255  # the bright band is on the left when upright
    turned = decode_image(exif_jpeg(image, 6), max_pixels=50_000_000)
    assert turned.shape == (40, 60) and turned[:, :15].mean() > 200 > turned[:, 45:].mean()
    sixteen = (np.arange(256, dtype=np.uint16).reshape(16, 16) * 257)
    gray = decode_image(encode(sixteen, ".png"), max_pixels=50_000_000, formats=IMPORT_FORMATS)
    assert np.array_equal(gray, np.arange(256, dtype=np.uint8).reshape(16, 16))
    colour = decode_image(encode(image, ".png"), max_pixels=50_000_000, color=True)
    assert colour.shape == (40, 60, 3) and np.array_equal(colour, image)
    assert np.array_equal(decode_image(encode(image, ".png"), max_pixels=50_000_000), cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
