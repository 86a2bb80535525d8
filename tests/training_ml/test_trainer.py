import json
import subprocess
import sys
import time

import numpy as np
import onnx
import pytest
import torch

from training_jobs.ml.config import ConfigError, TrainConfig
from training_jobs.ml.data import TrainData
from training_jobs.ml import trainer as trainer_module
from training_jobs.ml.trainer import TrainingCancelled, class_weights, main, train

from .conftest import drawn_faces

QUICK = {"architecture": "light_residual", "optimizer": "adam", "learning_rate": 2e-3, "batch_size": 32,
         "occlusion_per_class": 0, "num_threads": 1}  # one thread: CI machines are shared, OpenMP spins


def test_drawn_mouths_are_learned_well_above_chance(mouth_data, tmp_path):
    events = []
    config = TrainConfig.from_dict({**QUICK, "epochs": 8, "occlusion_per_class": 1})
    result = train(config, mouth_data, workdir=tmp_path, on_event=events.append)

    assert result.metrics["accuracy"] >= 0.8  # chance is 1/3
    assert result.best_val_accuracy == max(h["val_accuracy"] for h in result.history)
    assert result.metrics["per_class"]["happy"]["support"] == 8
    assert result.param_count == 551_175 and result.epochs_run == 8 and not result.stopped_early
    assert "validation" in result.test_split_name
    # Events: the training phase first, then batches and epochs in order, then the evaluation's phases.
    phases = [e["phase"] for e in events if e["type"] == "run.status"]
    assert events[0]["type"] == "run.status" and phases == ["training", "evaluating", "occlusion_maps"]
    assert events[0]["device"].startswith("cpu: ")
    epochs = [e for e in events if e["type"] == "run.epoch"]
    assert [e["epoch"] for e in epochs] == list(range(1, 9)) and epochs == result.history
    assert epochs[-1]["progress"] == 100 and epochs[-1]["eta_seconds"] == 0
    # Each epoch says how fast it trained and validated: what refreshes the measured throughput.
    assert all(e["train_images_per_s"] > 0 and e["val_images_per_s"] > 0 and e["train_seconds"] > 0 for e in epochs)
    batches = [e for e in events if e["type"] == "run.batch"]
    progress = [e["progress"] for e in batches]
    assert progress == sorted(progress) and batches[-1]["batch"] == batches[-1]["batches"] == 7
    assert all(e["images_per_s"] > 0 for e in batches)
    assert events[-1]["type"] == "run.status" and events[-1]["phase"] == "occlusion_maps"
    # One occlusion map per class, with the face it belongs to.
    assert sorted(item["label"] for item in result.occlusion) == ["happy", "sad", "surprise"]
    assert np.array(result.occlusion[0]["face"]).shape == (48, 48)
    assert (tmp_path / "best.pt").exists() and (tmp_path / "last.pt").exists()


class SteadyClock:
    """Stands in for the trainer's `time`: every reading advances 10 ms, however busy the machine."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        self.now += 0.01
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


def test_batch_events_are_throttled(mouth_data, tmp_path, monkeypatch):
    clock = SteadyClock()
    monkeypatch.setattr(trainer_module, "time", clock)
    events = []
    config = TrainConfig.from_dict({**QUICK, "architecture": "basic_cnn", "epochs": 1, "batch_size": 4,
                                    "max_batches_per_epoch": 30})
    train(config, mouth_data, workdir=tmp_path, on_event=events.append)
    batches = [e for e in events if e["type"] == "run.batch"]
    # At most one event per 0.25 s of the clock, plus the epoch's last batch.
    assert 1 <= len(batches) <= clock.now / 0.25 + 2 and len(batches) < 30


def test_cancel_stops_within_one_batch(mouth_data, tmp_path):
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 3

    config = TrainConfig.from_dict({**QUICK, "epochs": 5})
    with pytest.raises(TrainingCancelled):
        train(config, mouth_data, workdir=tmp_path, should_stop=should_stop)
    assert len(calls) == 4  # asked before every batch, stopped at the first yes
    assert not (tmp_path / "last.pt").exists()


def test_a_resumed_run_continues_at_the_right_epoch_and_ends_like_an_uninterrupted_one(mouth_data, tmp_path):
    config = TrainConfig.from_dict({**QUICK, "epochs": 3, "max_batches_per_epoch": 2, "deterministic": True})
    straight = train(config, mouth_data, workdir=tmp_path / "straight")

    batches = []

    def stop_in_third_epoch():
        batches.append(1)
        return len(batches) > 4

    with pytest.raises(TrainingCancelled):
        train(config, mouth_data, workdir=tmp_path / "killed", should_stop=stop_in_third_epoch)
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=False)["epoch"] == 2

    events = []
    resumed = train(config, mouth_data, workdir=tmp_path / "killed", on_event=events.append)
    assert resumed.resumed_from_epoch == 2 and "resumed after epoch 2" in events[0]["message"]
    assert [e["epoch"] for e in events if e["type"] == "run.epoch"] == [3]
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    for a, b in zip(straight.history, resumed.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], abs=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], abs=1e-5)


def test_a_finished_run_is_not_trained_again_on_resume(mouth_data, tmp_path):
    config = TrainConfig.from_dict({**QUICK, "epochs": 1, "max_batches_per_epoch": 1})
    first = train(config, mouth_data, workdir=tmp_path)
    events = []
    again = train(config, mouth_data, workdir=tmp_path, on_event=events.append)
    assert not [e for e in events if e["type"] == "run.epoch"]
    assert again.metrics["accuracy"] == first.metrics["accuracy"] and len(again.history) == 1


def test_early_stopping_ends_the_run_after_patience_epochs_without_improvement(mouth_data, tmp_path):
    config = TrainConfig.from_dict({**QUICK, "epochs": 6, "learning_rate": 1e-7, "early_stopping_patience": 1,
                                    "max_batches_per_epoch": 1, "batch_size": 8})
    result = train(config, mouth_data, workdir=tmp_path)
    first_flat = next((i for i, h in enumerate(result.history) if not h["improved"]), None)
    if first_flat is None:  # improved every single epoch: nothing to stop
        assert len(result.history) == 6 and not result.stopped_early
    else:
        assert result.stopped_early and len(result.history) == first_flat + 1 < 6


def test_fine_tuning_with_a_frozen_backbone_keeps_the_backbone_as_loaded(mouth_data, tmp_path):
    base = TrainConfig.from_dict({**QUICK, "epochs": 1, "max_batches_per_epoch": 2})
    train(base, mouth_data, workdir=tmp_path / "base")
    loaded = torch.load(tmp_path / "base" / "best.pt", weights_only=True)["model"]

    batches = []
    tune = base.replace(epochs=3, freeze_backbone_epochs=1, init_checkpoint=str(tmp_path / "base" / "best.pt"),
                        optimizer="sgd", learning_rate=0.05)
    with pytest.raises(TrainingCancelled):
        train(tune, mouth_data, workdir=tmp_path / "tune", should_stop=lambda: batches.append(1) or len(batches) > 2)
    after = torch.load(tmp_path / "tune" / "last.pt", weights_only=False)
    assert after["history"][0]["frozen_backbone"] is True
    state = after["model"]
    for name, tensor in loaded.items():
        if name.startswith("classifier."):
            continue
        assert torch.equal(state[name], tensor), name  # weights and BN statistics untouched
    assert not torch.equal(state["classifier.0.weight"], loaded["classifier.0.weight"])


def test_class_weights_are_inverse_frequency():
    labels = np.array([3] * 60 + [0] * 30 + [1] * 10)
    weights = class_weights(labels)
    assert weights[3] == pytest.approx(100 / (7 * 60)) and weights[1] == pytest.approx(100 / (7 * 10))
    assert weights[2] == 0  # absent class


@pytest.mark.parametrize("optimizer,scheduler", [("sgd", "cosine"), ("rmsprop", "onecycle"), ("adamw", "none"),
                                                 ("nadam", "plateau")])
def test_every_optimizer_and_schedule_trains(optimizer, scheduler, mouth_data, tmp_path):
    config = TrainConfig.from_dict({**QUICK, "optimizer": optimizer, "scheduler": scheduler, "epochs": 2,
                                    "learning_rate": 1e-3, "max_batches_per_epoch": 2, "warmup_epochs": 1,
                                    "mixup_alpha": 0.2, "cutmix_alpha": 0.2, "erasing_prob": 0.3,
                                    "label_smoothing": 0.1, "weight_decay": 1e-4})
    result = train(config, mouth_data, workdir=tmp_path)
    lrs = [h["lr"] for h in result.history]
    assert all(np.isfinite(h["train_loss"]) for h in result.history) and all(lr > 0 for lr in lrs)
    if scheduler == "cosine":
        assert lrs[1] < config.learning_rate  # past the warm-up, on the way down


def test_own_validation_and_test_splits_are_used(tmp_path):
    pixels, labels = drawn_faces(20, seed=4)
    splits = np.array(["Training"] * 42 + ["PublicTest"] * 9 + ["PrivateTest"] * 9)
    config = TrainConfig.from_dict({**QUICK, "epochs": 1, "max_batches_per_epoch": 1})
    result = train(config, TrainData(pixels, labels, splits), workdir=tmp_path)
    assert result.test_split_name == "PrivateTest" and result.metrics["num_samples"] == 9
    assert result.splits["val"] == 9 and result.splits["train"] == 42


def test_the_command_line_trains_exports_and_writes_metrics(tmp_path, capsys):
    pixels, labels = drawn_faces(10, seed=5)
    dataset = tmp_path / "faces.npz"
    np.savez(dataset, pixels=pixels, labels=labels, splits=np.full(len(labels), "train"))
    code = main([str(dataset), "--workdir", str(tmp_path / "run"), "--onnx", str(tmp_path / "m.onnx"),
                 "--metrics-json", str(tmp_path / "m.json"), "--architecture", "light_residual", "--epochs", "1",
                 "--batch-size", "16", "--occlusion-per-class", "0", "--tta-flip", "true"])
    assert code == 0
    out = json.loads((tmp_path / "m.json").read_text())
    assert out["config"]["tta_flip"] is True and out["onnx"]["max_abs_diff"] < 1e-4
    assert (tmp_path / "m.onnx").exists() and "accuracy" in capsys.readouterr().out


def test_the_command_line_explains_a_bad_recipe(tmp_path, capsys):
    assert main([str(tmp_path / "x.npz"), "--workdir", str(tmp_path), "--optimizer", "lion"]) == 2
    assert "sgd, adam, adamw, rmsprop, nadam" in capsys.readouterr().err


def test_the_library_imports_no_django():
    # The framework-free core (fercore) comes along; the web stack must not: not Django, Celery or
    # DRF, and not the web app's own packages. tests/core/test_without_django.py runs the library
    # with Django impossible to import.
    code = ("import sys, pkgutil, importlib, training_jobs.ml; "
            "[importlib.import_module(f'training_jobs.ml.{m.name}') for m in pkgutil.iter_modules(training_jobs.ml.__path__)]; "
            "web = ('django', 'celery', 'rest_framework', 'channels', 'ferweb', 'inference', 'frontend'); "
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in web); "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_class_order_is_the_contracts():
    from fercore.classes import CLASSES as contract
    from training_jobs.ml import CLASSES

    assert CLASSES is contract


def test_a_student_distils_from_a_teacher_and_keeps_a_weight_average(mouth_data, tmp_path):
    teacher = TrainConfig.from_dict({**QUICK, "architecture": "basic_cnn", "epochs": 1, "max_batches_per_epoch": 2})
    train(teacher, mouth_data, workdir=tmp_path / "teacher")
    student = TrainConfig.from_dict({**QUICK, "epochs": 1, "max_batches_per_epoch": 3, "ema_decay": 0.99,
                                     "teacher_checkpoint": str(tmp_path / "teacher" / "best.pt")})
    result = train(student, mouth_data, workdir=tmp_path / "student")
    assert np.isfinite(result.history[0]["train_loss"])
    last = torch.load(tmp_path / "student" / "last.pt", weights_only=False)
    assert last["ema"]["updates"] == 3
    # best.pt (what is evaluated and exported) holds the averaged weights, not the raw ones.
    best = torch.load(tmp_path / "student" / "best.pt", weights_only=True)["model"]
    name = "classifier.0.weight"
    assert torch.equal(best[name], last["ema"]["model"][name])
    assert not torch.equal(best[name], last["model"][name])


def test_exported_models_teach_from_logits_computed_once_per_face(mouth_data, tmp_path, monkeypatch):
    from training_jobs.ml.export import export_onnx

    teacher = train(TrainConfig.from_dict({**QUICK, "epochs": 8}), mouth_data, workdir=tmp_path / "teacher")
    assert teacher.metrics["accuracy"] >= 0.8
    sharp, soft = tmp_path / "sharp.onnx", tmp_path / "soft.onnx"
    export_onnx(teacher.model, sharp, architecture="light_residual", version="sharp", temperature=0.5)
    export_onnx(teacher.model, soft, architecture="light_residual", version="soft", temperature=2.0)
    calls = []
    real = trainer_module.onnx_teacher_logits
    monkeypatch.setattr(trainer_module, "onnx_teacher_logits", lambda *a: calls.append(a) or real(*a))
    # distill_weight 1: the student sees only the teachers' logits, never a label, so it can
    # only learn the task if every row of the table belongs to the face it is paired with.
    student = train(TrainConfig.from_dict({**QUICK, "epochs": 8, "teacher_checkpoint": f"{sharp}, {soft}",
                                           "distill_weight": 1.0}), mouth_data, workdir=tmp_path / "student")
    assert [str(c[0]) for c in calls] == [str(sharp), str(soft)]
    assert all(len(c[1]) == student.splits["train"] for c in calls)
    assert student.metrics["accuracy"] >= 0.8
    mixed = TrainConfig.from_dict({**QUICK, "epochs": 1, "teacher_checkpoint": f"{sharp},{tmp_path / 'teacher' / 'best.pt'}"})
    with pytest.raises(ConfigError) as caught:
        train(mixed, mouth_data, workdir=tmp_path / "mixed")
    assert "ensemble of teachers must be exported .onnx models" in caught.value.errors["teacher_checkpoint"]


def three_class_onnx():
    """Takes FER faces, returns 3 logits: a valid model that breaks the 7-class contract."""
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.zeros((48 * 48, 3), dtype=np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "three", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 48, 48])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3])], [weights])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_an_onnx_teacher_refuses_mixing_and_files_that_are_not_models(mouth_data, tmp_path):
    from training_jobs.ml.export import export_onnx

    not_fer = tmp_path / "three.onnx"
    onnx.save(three_class_onnx(), not_fer)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a model")
    for path, message in ((not_fer, "return 7 logits"), (garbage, "cannot load garbage.onnx")):
        config = TrainConfig.from_dict({**QUICK, "epochs": 1, "teacher_checkpoint": str(path)})
        with pytest.raises(ConfigError) as caught:
            train(config, mouth_data, workdir=tmp_path / path.stem)
        assert message in caught.value.errors["teacher_checkpoint"]
    fer = tmp_path / "fer.onnx"
    export_onnx(train(TrainConfig.from_dict({**QUICK, "epochs": 1, "max_batches_per_epoch": 1}), mouth_data,
                      workdir=tmp_path / "one").model, fer, architecture="light_residual", version="one")
    config = TrainConfig.from_dict({**QUICK, "epochs": 1, "teacher_checkpoint": str(fer), "mixup_alpha": 0.2})
    with pytest.raises(ConfigError) as caught:
        train(config, mouth_data, workdir=tmp_path / "mixed")
    assert "mixup" in caught.value.errors["teacher_checkpoint"]


def test_a_missing_teacher_or_starting_checkpoint_is_a_config_error(mouth_data, tmp_path):
    for field in ("teacher_checkpoint", "init_checkpoint"):
        config = TrainConfig.from_dict({**QUICK, "epochs": 1, field: str(tmp_path / "nope.pt")})
        with pytest.raises(ConfigError) as caught:
            train(config, mouth_data, workdir=tmp_path / field)
        assert field in caught.value.errors
