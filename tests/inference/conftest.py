"""Inference fixtures: photos drawn in the test (the contract model is in tests/conftest.py)."""
import pytest

from inference.synthetic import draw_face, jpeg, scene


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
