"""Inference fixtures: a contract-following ONNX model and photos drawn in the test."""
import cv2
import numpy as np
import pytest

from inference.synthetic import contract_model, draw_face, jpeg, scene


@pytest.fixture
def model_file(tmp_path, settings):
    """A small random model that follows the model contract, serving as the site default."""
    path = contract_model(tmp_path / "models" / "default.onnx", seed=1, version="test-default")
    settings.FERWEB_DEFAULT_MODEL = path
    return path


@pytest.fixture
def served_model(model_file, monkeypatch):
    """The contract model for server and worker processes started by the test (they read the environment)."""
    monkeypatch.setenv("FERWEB_DEFAULT_MODEL", str(model_file))
    return model_file


@pytest.fixture
def two_face_photo():
    """A 640x480 cluttered BGR photo with two drawn faces; returns (image, true boxes left to right)."""
    return scene([draw_face(170, seed=1), draw_face(150, smile=1.0, seed=2)], seed=7)


@pytest.fixture
def two_face_jpeg(two_face_photo):
    return jpeg(two_face_photo[0])


def iou(a, b):
    from inference.tracking import iou as _iou

    return _iou(a, b)


def rotate_exif_jpeg(image: np.ndarray, orientation: int) -> bytes:
    """A JPEG whose pixels are stored rotated, with the EXIF tag that tells viewers to turn it back."""
    from io import BytesIO

    from PIL import Image

    stored = {6: cv2.rotate(image, cv2.ROTATE_90_COUNTERCLOCKWISE), 8: cv2.rotate(image, cv2.ROTATE_90_CLOCKWISE),
              3: cv2.rotate(image, cv2.ROTATE_180)}[orientation]
    pil = Image.fromarray(cv2.cvtColor(stored, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = BytesIO()
    pil.save(out, format="JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()
