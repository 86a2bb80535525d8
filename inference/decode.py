"""Uploaded bytes -> a NumPy image, upright (EXIF orientation applied), refusing what is not a whole image."""
import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP"}
ALLOWED_NAMES = "JPEG, PNG, WebP, BMP"


class ImageDecodeError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def decode_image(data: bytes, *, color: bool = False) -> np.ndarray:
    """Gray uint8 [H, W] (or BGR [H, W, 3] when color) from JPEG/PNG/WebP/BMP bytes.

    The pipeline only needs gray; JPEGs decode straight to gray, which is about four
    times cheaper than decoding colour and converting.
    """
    if not data:
        raise ImageDecodeError("empty", "The uploaded file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            kind = ALLOWED_FORMATS.get(image.format)
            if kind is None:
                raise ImageDecodeError(
                    "unsupported_format", f"Unsupported image format {image.format}: use one of {ALLOWED_NAMES}."
                )
            if not color and kind == "JPEG" and image.mode in ("RGB", "YCbCr", "L"):
                image.draft("L", image.size)
            image.load()
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:
        raise ImageDecodeError("not_an_image", f"The file is not an image this service reads ({ALLOWED_NAMES}).")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageDecodeError("too_many_pixels", f"The image has more than {Image.MAX_IMAGE_PIXELS:,} pixels.")
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError("truncated", f"The image could not be decoded; it may be truncated or damaged ({exc}).")
    image = ImageOps.exif_transpose(image)
    if color:
        return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image)
