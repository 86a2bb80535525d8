"""Inference fixtures: photos drawn in the test, model versions (the contract model is in tests/conftest.py)."""
from pathlib import Path

import pytest
from django.conf import settings

from inference.models import ModelVersion
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


def make_version(owner, name="v1", *, run=None, **fields) -> ModelVersion:
    """A version with a small stand-in file; `run` (a TrainingRun) is kept by its id, as training does."""
    path = Path(settings.MEDIA_ROOT) / "models" / f"{name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"onnx bytes of " + name.encode())
    return ModelVersion.objects.create(owner=owner, onnx_file=f"models/{name}.onnx", architecture="light_residual",
                                       version=name, metrics={"accuracy": 0.5},
                                       run_id=run.pk if run is not None else None, **fields)
