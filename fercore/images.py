"""The one guarded image reader: uploaded bytes -> a NumPy image, upright, or a refusal with a reason.

Every path that decodes an uploaded image goes through `decode_image`: dataset imports (zip and
folder, and the ML command line that reads datasets the same way), labeling photos, /api/predict/,
batch jobs and webcam frames. It reads the size from the header first and refuses images over the
pixel limit before a single pixel is decoded (a PNG of zeros a few kilobytes long can claim
30000x30000 pixels, 900 MB once decoded). The limit is an argument: Django code passes
settings.FERWEB_MAX_IMAGE_PIXELS (through `archive.Limits` for archives), other code DEFAULT_MAX_PIXELS.

Why Pillow and not OpenCV, for import and serving alike: Pillow reads the header without decoding
(so the limit is checked before any memory is spent), and refuses truncated files that OpenCV fills
with gray. The two give the same gray values for JPEGs (both decode the luma plane); colour PNG,
WebP and BMP differ by at most one gray level between them, and 16-bit images are scaled to 8 bits
here the way OpenCV does. One decoder means a face imported for training and the same face
served at prediction time reach the model as the same pixels.
"""
import io
import warnings
from pathlib import PurePosixPath

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Pillow format -> the name a person knows. Serving takes the common photo formats.
ALLOWED_FORMATS = {"JPEG": "JPEG", "MPO": "JPEG", "PNG": "PNG", "WEBP": "WebP", "BMP": "BMP"}
ALLOWED_NAMES = "JPEG, PNG, WebP, BMP"
# Dataset imports also take the older formats found in research datasets (what imports read before).
IMPORT_FORMATS = {
    **ALLOWED_FORMATS, "DIB": "BMP", "GIF": "GIF", "TIFF": "TIFF", "PPM": "PGM/PPM/PBM", "JPEG2000": "JPEG 2000",
    "AVIF": "AVIF",
}
# The one list of image file suffixes: members of an archive or files of a folder with these names are
# read as images, anything else is set aside by its name. The import's formats, plus HEIC, which phones
# save: it is tried, so the person is told it could not be read rather than that it is no image.
IMAGE_SUFFIXES = frozenset({
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm",
    ".pnm", ".jp2", ".heic", ".avif",
})
# FERWEB_MAX_IMAGE_PIXELS's default, for code without settings: a 50-megapixel camera photo still fits.
DEFAULT_MAX_PIXELS = 50_000_000
SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}

# Pillow warns above its own limit (89 MP); the caller's `max_pixels` is the one that decides. Set once here:
# warnings.catch_warnings() around each call is not thread-safe, and serving decodes on a thread pool.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def is_image_name(name: str) -> bool:
    """Whether a file or archive member is read as an image, by its suffix (IMAGE_SUFFIXES)."""
    return PurePosixPath(name).suffix.lower() in IMAGE_SUFFIXES


class ImageDecodeError(ValueError):
    """Codes: empty, not_an_image, unsupported_format, too_many_pixels, truncated."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def _too_many_pixels(width: int, height: int, limit: int) -> ImageDecodeError:
    return ImageDecodeError(
        "too_many_pixels",
        f"The image is {width:,} x {height:,} pixels, over the limit of {limit:,} pixels: scale it down and try again.",
    )


def _open_checked(data: bytes, formats: dict, limit: int) -> Image.Image:
    """Open (header only), check the format and the pixel count; nothing is decoded yet."""
    names = ", ".join(dict.fromkeys(formats.values()))
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:  # over twice Pillow's own limit: refused from the header as well
        shown = min(limit, 2 * Image.MAX_IMAGE_PIXELS)
        raise ImageDecodeError(
            "too_many_pixels", f"The image has more than {shown:,} pixels; scale it down and try again."
        ) from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not_an_image", f"The file is not an image this service reads ({names}).") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageDecodeError("truncated", f"The image header could not be read ({exc}).") from None
    if image.format not in formats:
        raise ImageDecodeError("unsupported_format", f"Unsupported image format {image.format}: use one of {names}.")
    width, height = image.size
    if width * height > limit:
        raise _too_many_pixels(width, height, limit)
    return image


def _to_gray(image: Image.Image) -> np.ndarray:
    if image.mode in SIXTEEN_BIT_MODES:
        # 16-bit scans: keep the high byte (as OpenCV does) instead of Pillow's clipping to white.
        return (np.asarray(image).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8)
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image)


def decode_image(data: bytes, *, max_pixels: int, color: bool = False, formats: dict = ALLOWED_FORMATS) -> np.ndarray:
    """Gray uint8 [H, W] (or BGR [H, W, 3] when color) from image bytes, EXIF orientation applied.

    1. refuse empty input;
    2. open the header: refuse what is not an image, a format outside `formats`, or more pixels
       than `max_pixels` -- all before decoding;
    3. decode (JPEGs straight to gray, about four times cheaper than colour then convert);
       a truncated or damaged file is refused here.
    """
    if not data:
        raise ImageDecodeError("empty", "The uploaded file is empty.")
    image = _open_checked(data, formats, max_pixels)
    try:
        if not color and image.format in ("JPEG", "MPO") and image.mode in ("RGB", "YCbCr", "L"):
            image.draft("L", image.size)
        image.load()
        image = ImageOps.exif_transpose(image)
    except Exception as exc:  # any decoder failure means a damaged file, never a crash of the caller
        raise ImageDecodeError("truncated", f"The image could not be decoded; it may be truncated or damaged ({exc}).")
    if not color:
        return _to_gray(image)
    if image.mode in SIXTEEN_BIT_MODES:
        return np.repeat(_to_gray(image)[:, :, None], 3, axis=2)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"))[:, :, ::-1])
