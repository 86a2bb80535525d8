import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from fercore.model_contract import read_metadata
from training_jobs.ml import CLASSES
from training_jobs.ml.architectures import ARCHITECTURES, build_model
from training_jobs.ml.export import export_onnx, onnx_latency_ms


def trained_looking(name):
    """A model in eval mode whose BN statistics are not the identity, as after training."""
    torch.manual_seed(0)
    model = build_model(name)
    model.train()
    with torch.no_grad():
        model(torch.rand(16, 1, 48, 48))  # moves the running statistics
    return model.eval()


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_onnx_runtime_agrees_with_pytorch_for_every_architecture(name, tmp_path):
    model = trained_looking(name)
    report = export_onnx(model, tmp_path / f"{name}.onnx", architecture=name, version="v1", metrics={"accuracy": 0.5})
    assert report.max_abs_diff < 1e-4 and report.top1_agree
    # And on a batch size the export never saw (dynamic N).
    faces = np.random.default_rng(1).random((5, 1, 48, 48), dtype=np.float32)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"input": faces})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(faces)).numpy()
    assert got.shape == (5, 7)
    assert np.abs(got - expected).max() < 1e-4


def test_the_file_follows_the_model_contract(tmp_path):
    path = export_onnx(trained_looking("light_residual"), tmp_path / "m.onnx", architecture="light_residual",
                       version="run-7", metrics={"accuracy": 0.71, "macro_auc": 0.9}).path
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    assert [i.name for i in proto.graph.input] == ["input"]
    assert [o.name for o in proto.graph.output] == ["logits"]
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [1, 48, 48]
    meta = read_metadata(path)
    assert json.loads(meta["fer.classes"]) == list(CLASSES)
    assert json.loads(meta["fer.input"]) == {"height": 48, "width": 48, "channels": 1, "scale": 1 / 255}
    assert meta["fer.architecture"] == "light_residual" and meta["fer.version"] == "run-7"
    assert json.loads(meta["fer.metrics"]) == {"accuracy": 0.71, "macro_auc": 0.9}


def test_flip_averaging_and_temperature_are_folded_into_the_graph(tmp_path):
    model = trained_looking("light_residual")
    path = export_onnx(model, tmp_path / "tta.onnx", architecture="light_residual", version="v", metrics={},
                       temperature=2.0, tta_flip=True).path
    faces = np.random.default_rng(2).random((3, 1, 48, 48), dtype=np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": faces})[0]
    x = torch.from_numpy(faces)
    with torch.no_grad():
        expected = ((model(x) + model(torch.flip(x, dims=[3]))) / 2 / 2.0).numpy()
    assert np.abs(got - expected).max() < 1e-4
    assert read_metadata(path)["fer.tta_flip"] == "true"


def test_latency_is_a_positive_median(tmp_path):
    path = export_onnx(trained_looking("light_residual"), tmp_path / "m.onnx", architecture="light_residual",
                       version="v", metrics={}).path
    assert 0 < onnx_latency_ms(path, batch=1, threads=1, runs=10, warmup=2) < 1000
