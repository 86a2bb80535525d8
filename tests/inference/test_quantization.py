"""INT8 variant: measured against the float model, written only when accurate, served while it
matches the float file it was quantized from."""
import io
import json
import os
import zipfile

import cv2
import numpy as np
from django.core.management import call_command

from fercore.classes import CLASSES
from inference.engine import SOURCE_HASH_KEY, ModelCache, file_sha256, int8_path_for
from inference.synthetic import contract_model


def faces_zip(path, per_class=20):
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for name in CLASSES:
            for i in range(per_class):
                face = cv2.GaussianBlur(rng.integers(0, 256, (48, 48), dtype=np.uint8), (5, 5), 1.5)
                archive.writestr(f"train/{name}/Training_{i}.jpg", cv2.imencode(".jpg", face)[1].tobytes())
    return path


def test_quantize_model_measures_both_and_keeps_an_accurate_int8_model(tmp_path):
    model = contract_model(tmp_path / "m.onnx", seed=3)
    out = io.StringIO()
    call_command("quantize_model", model=str(model), dataset=str(faces_zip(tmp_path / "faces.zip")),
                 calibration=40, validation=100, max_drop=100, json=True, stdout=out)
    report = json.loads(out.getvalue())
    assert report["validation_faces"] == 100 and report["calibration_faces"] == 40
    assert 0 <= report["float"]["accuracy"] <= 1 and 0 <= report["int8"]["accuracy"] <= 1
    assert report["offered"] and int8_path_for(model).exists()
    meta = ModelCache(threads=1).get(int8_path_for(model)).metadata
    assert meta["fer.quantized"] == "int8" and json.loads(meta["fer.classes"]) == list(CLASSES)
    assert meta[SOURCE_HASH_KEY] == file_sha256(model)


def test_an_int8_model_that_loses_accuracy_is_not_offered(tmp_path):
    model = contract_model(tmp_path / "m.onnx", seed=3)
    int8_path_for(model).write_bytes(b"stale")
    out = io.StringIO()
    call_command("quantize_model", model=str(model), dataset=str(faces_zip(tmp_path / "faces.zip")),
                 calibration=40, validation=100, max_drop=-1, json=True, stdout=out)
    assert json.loads(out.getvalue())["offered"] is False
    assert not int8_path_for(model).exists()


def test_the_engine_serves_the_int8_variant_of_the_float_file_as_it_is_whatever_the_file_times(tmp_path):
    model = contract_model(tmp_path / "m.onnx", seed=1, version="float")
    contract_model(int8_path_for(model), seed=2, version="int8", metadata={SOURCE_HASH_KEY: file_sha256(model)})
    later = int8_path_for(model).stat().st_mtime_ns + 2_000_000_000
    os.utime(model, ns=(later, later))  # a fresh checkout may write the float file last
    cache = ModelCache(threads=1, prefer_int8=True)
    assert cache.get(model).version == "int8"
    contract_model(model, seed=3, version="retrained")  # same size, other weights
    assert cache.get(model).version == "retrained"


def test_a_broken_int8_file_leaves_the_float_model_serving(tmp_path):
    model = contract_model(tmp_path / "m.onnx", seed=1, version="float")
    int8_path_for(model).write_bytes(b"not a model")
    cache = ModelCache(threads=1, prefer_int8=True)
    assert cache.get(model).version == "float"
    assert cache.get(model).version == "float"


def test_an_int8_variant_without_a_recorded_hash_serves_only_while_it_is_newer(tmp_path):
    model = contract_model(tmp_path / "m.onnx", seed=1, version="float")
    cache = ModelCache(threads=1, prefer_int8=True)
    assert cache.get(model).version == "float"
    int8 = contract_model(int8_path_for(model), seed=2, version="int8")
    assert cache.get(model).version == "int8"
    assert ModelCache(threads=1, prefer_int8=False).get(model).version == "float"
    later = int8.stat().st_mtime_ns + 2_000_000_000
    os.utime(model, ns=(later, later))  # the float model was retrained
    assert cache.get(model).version == "float"


def test_with_a_run_the_int8_model_is_compared_on_that_runs_hold_out(tmp_path, alice):
    from tests.training_web.conftest import make_ready_dataset
    from training_jobs.ml.data import stratified_holdout
    from training_jobs.models import TrainingRun
    from training_jobs.services import load_train_data

    dataset = make_ready_dataset(alice, per_class=10, splits=(1.0, 0.0, 0.0))
    run = TrainingRun.objects.create(owner=alice, dataset=dataset, architecture="fast_resnet", optimizer="adamw",
                                     config={"validation_fraction": 0.2, "seed": 3})
    _, held = stratified_holdout(load_train_data(run).labels, 0.2, 3)
    model = contract_model(tmp_path / "m.onnx", seed=3)
    out = io.StringIO()
    card = tmp_path / "m.json"
    card.write_text(json.dumps({"name": "m"}))
    call_command("quantize_model", model=str(model), run=run.pk, calibration=20, max_drop=100, card=str(card),
                 json=True, stdout=out)
    report = json.loads(out.getvalue())
    written = json.loads(card.read_text())
    assert written["name"] == "m" and written["int8"]["int8"] == report["int8"] and written["int8"]["offered"]
    assert report["faces_from"] == f"hold-out of run {run.pk}"
    assert report["validation_faces"] == len(held) == 6 and report["calibration_faces"] == 20  # 3 drawn classes
