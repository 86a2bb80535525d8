"""The model that ships in inference/models/: it loads, follows the model contract, and
recognises FER2013 faces far better than chance."""
import json
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from fercore.classes import CLASSES
from fercore.preprocess import softmax, to_model_input
from inference.engine import ModelCache
from inference.synthetic import FER_ZIP

MODELS = Path(__file__).resolve().parents[2] / "inference" / "models"
SHIPPED = [MODELS / "default.onnx", MODELS / "default.int8.onnx"]


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def fer_faces(per_class: int):
    """The first `per_class` faces of every class in the FER2013 training zip."""
    if not FER_ZIP.exists():
        pytest.skip(f"{FER_ZIP} is not here")
    faces, labels = [], []
    with zipfile.ZipFile(FER_ZIP) as archive:
        names = sorted(n for n in archive.namelist() if n.endswith(".jpg"))
        for index, name in enumerate(CLASSES):
            members = [n for n in names if n.split("/")[-2] == name][:per_class]
            for member in members:
                image = cv2.imdecode(np.frombuffer(archive.read(member), np.uint8), cv2.IMREAD_GRAYSCALE)
                faces.append(image)
                labels.append(index)
    return np.stack(faces), np.array(labels)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_the_shipped_model_follows_the_contract(path):
    model = session(path)
    (inp,), (out,) = model.get_inputs(), model.get_outputs()
    assert inp.name == "input" and inp.type == "tensor(float)" and inp.shape[1:] == [1, 48, 48]
    assert out.name == "logits" and out.shape[1] == 7
    meta = model.get_modelmeta().custom_metadata_map
    assert json.loads(meta["fer.classes"]) == list(CLASSES)
    assert json.loads(meta["fer.input"]) == {"height": 48, "width": 48, "channels": 1, "scale": 1 / 255}
    assert meta["fer.architecture"] == "fast_resnet"
    assert meta["fer.version"].startswith("default-")
    assert 0 < json.loads(meta["fer.metrics"])["accuracy"] <= 1
    logits = model.run(None, {"input": np.zeros((3, 1, 48, 48), np.float32)})[0]
    assert logits.shape == (3, 7) and logits.dtype == np.float32


def test_the_model_card_describes_the_shipped_model():
    card = json.loads((MODELS / "default.json").read_text())
    meta = session(MODELS / "default.onnx").get_modelmeta().custom_metadata_map
    assert card["version"] == meta["fer.version"]
    assert card["architecture"] == meta["fer.architecture"]
    assert card["parameters"] == 1_236_903
    assert card["command"].startswith("python manage.py train --dataset ")
    assert card["metrics"]["accuracy"] == pytest.approx(json.loads(meta["fer.metrics"])["accuracy"])
    assert set(card["metrics_summary"]["recall"]) == set(CLASSES)
    assert card["latency"]["batch1_median_ms_2_threads"] > 0


def test_the_app_serves_the_shipped_int8_model_even_when_the_float_file_is_newer(tmp_path):
    for path in SHIPPED:  # a checkout writes files in any order
        (tmp_path / path.name).write_bytes(path.read_bytes())
    later = (tmp_path / "default.int8.onnx").stat().st_mtime_ns + 2_000_000_000
    os.utime(tmp_path / "default.onnx", ns=(later, later))
    served = ModelCache(threads=1, prefer_int8=True).get(tmp_path / "default.onnx")
    assert served.path.name == "default.int8.onnx" and served.metadata["fer.quantized"] == "int8"


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_it_classifies_fer2013_faces_sensibly(path):
    faces, labels = fer_faces(per_class=10)
    probs = softmax(session(path).run(None, {"input": to_model_input(faces)})[0])
    predicted = probs.argmax(axis=1)
    assert (predicted == labels).mean() >= 0.5  # chance is 1/7
    happy = labels == CLASSES.index("happy")
    assert (predicted[happy] == labels[happy]).mean() >= 0.7
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-5)
