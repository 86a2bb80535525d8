"""The trainer's steps one at a time, and the one checkpoint format they save and resume from."""
import numpy as np
import pytest
import torch

from training_jobs.ml import checkpoint as checkpoint_module
from training_jobs.ml.checkpoint import (
    FORMAT, CheckpointError, DatasetChanged, Provenance, code_version, dataset_sha256, load_checkpoint,
    save_checkpoint,
)
from training_jobs.ml.config import TrainConfig
from training_jobs.ml.data import DataError, TrainData, split_data
from training_jobs.ml.trainer import (
    TrainingCancelled, build_training, evaluate, steps_per_epoch, train, train_one_epoch, training_tensors,
)

QUICK = {"architecture": "light_residual", "optimizer": "adam", "learning_rate": 2e-3, "batch_size": 32,
         "occlusion_per_class": 0, "num_threads": 1}
STILL = {"hflip": False, "rotation_deg": 0.0, "shift": 0.0, "zoom": 0.0, "brightness": 0.0, "contrast": 0.0}


def setup_for(config, data):
    splits = split_data(data, validation_fraction=config.validation_fraction, seed=config.seed)
    pixels, labels = training_tensors(data, splits, torch.device("cpu"))
    steps = steps_per_epoch(config, len(labels))
    return build_training(config, torch.device("cpu"), pixels, labels.numpy(), steps, []), pixels, labels, steps


# ---------------------------------------------------------------- the steps

def test_train_one_epoch_lowers_the_loss_on_a_tiny_batch(mouth_data):
    torch.manual_seed(0)
    tiny = mouth_data.subset(np.arange(24))
    config = TrainConfig.from_dict({**QUICK, **STILL, "batch_size": 24, "validation_fraction": 0.01,
                                    "scheduler": "none", "class_weighting": False})
    setup, pixels, labels, steps = setup_for(config, tiny)
    assert steps == 1
    losses = [train_one_epoch(setup, config, pixels, labels, epoch=epoch, steps=steps)[0] for epoch in range(6)]
    assert losses[-1] < losses[0] / 2, losses
    events = []
    loss, accuracy = train_one_epoch(setup, config, pixels, labels, epoch=6, steps=steps, emit=events.append)
    assert 0 <= accuracy <= 1 and np.isfinite(loss)
    assert [(e["type"], e["epoch"], e["batch"], e["batches"]) for e in events] == [("run.batch", 7, 1, 1)]


def test_train_one_epoch_asks_to_stop_before_every_batch(mouth_data):
    config = TrainConfig.from_dict({**QUICK, "batch_size": 8})
    setup, pixels, labels, steps = setup_for(config, mouth_data)
    asked = []
    with pytest.raises(TrainingCancelled, match="epoch 1"):
        train_one_epoch(setup, config, pixels, labels, epoch=0, steps=steps,
                        stop=lambda: asked.append(1) or len(asked) > 2)
    assert len(asked) == 3


def test_evaluate_returns_a_loss_and_an_accuracy_between_0_and_1(mouth_data):
    config = TrainConfig.from_dict(QUICK)
    setup, *_ = setup_for(config, mouth_data)
    loss, accuracy = evaluate(setup.eval_model, mouth_data.pixels[:30], mouth_data.labels[:30])
    assert np.isfinite(loss) and loss > 0
    assert 0 <= accuracy <= 1
    assert accuracy * 30 == pytest.approx(round(accuracy * 30))  # a share of the 30 faces


# ---------------------------------------------------------------- provenance

def test_the_dataset_hash_is_stable_and_sees_every_pixel_label_and_split(mouth_data):
    splits = split_data(mouth_data, seed=42)
    first = dataset_sha256(mouth_data, splits)
    assert first == dataset_sha256(mouth_data.subset(np.arange(len(mouth_data))), split_data(mouth_data, seed=42))
    assert len(first) == 64
    pixels = mouth_data.pixels.copy()
    pixels[5, 10, 10] ^= 1
    labels = mouth_data.labels.copy()
    labels[5] = (labels[5] + 1) % 7
    changed = [
        dataset_sha256(TrainData(pixels, mouth_data.labels, mouth_data.splits), splits),
        dataset_sha256(TrainData(mouth_data.pixels, labels, mouth_data.splits), splits),
        dataset_sha256(mouth_data, split_data(mouth_data, seed=43)),
    ]
    assert first not in changed and len(set(changed)) == 3


def test_the_code_version_comes_from_git_else_the_package(monkeypatch, tmp_path):
    assert code_version()
    monkeypatch.setattr(checkpoint_module, "SOURCE_ROOT", tmp_path)  # not a checkout
    import importlib.metadata

    assert code_version() == importlib.metadata.version("ferweb")


# ---------------------------------------------------------------- the format

def provenance():
    return Provenance(dataset_sha256="ab" * 32, code_version="v1.2-3-gabc1234-dirty",
                      torch_version=str(torch.__version__))


def test_a_checkpoint_round_trip_keeps_every_field(tmp_path):
    config = TrainConfig.from_dict(QUICK).to_dict()
    model = {"w": torch.randn(3, 4), "n": torch.tensor(7)}
    resume = {"optimizer": {"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1, "params": [0]}]},
              "schedule": {"step": 12, "plateau": None}, "scaler": None, "ema": {"model": model, "updates": 5},
              "history": [{"epoch": 1, "val_accuracy": 0.5}], "best_epoch": 1, "epochs_without_improvement": 0,
              "stopped_early": False, "wall_time_s": 1.5, "rng": checkpoint_module.rng_state()}
    save_checkpoint(tmp_path / "last.pt", model=model, epoch=1, best_val_accuracy=0.5, config=config,
                    provenance=provenance(), **resume)

    loaded = load_checkpoint(tmp_path / "last.pt")  # untrusted: tensors and plain values only
    expected = {"format": FORMAT, "model": model, "epoch": 1, "best_val_accuracy": 0.5, "config": config,
                "architecture": "light_residual", "classes": ["angry", "disgust", "fear", "happy", "sad", "surprise",
                                                              "neutral"],
                **provenance().as_dict(), **resume}
    assert sorted(loaded) == sorted(expected)
    for key, value in expected.items():
        assert_same(loaded[key], value, key)
    assert not (tmp_path / "last.pt.tmp").exists()


def assert_same(a, b, where):
    if isinstance(b, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(b, dict):
        assert sorted(a, key=str) == sorted(b, key=str), where
        for key in b:
            assert_same(a[key], b[key], f"{where}.{key}")
    elif isinstance(b, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


def test_a_checkpoint_of_another_kind_is_refused_with_the_reason(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "bare.pt")
    with pytest.raises(CheckpointError, match="not a FERWeb checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    torch.save({"format": 1, "rng": np.random.get_state()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="more than tensors"):
        load_checkpoint(tmp_path / "pickled.pt")  # untrusted: never unpickled


def test_a_run_saves_its_config_data_hash_and_code_version_in_both_checkpoints(mouth_data, tmp_path):
    config = TrainConfig.from_dict({**QUICK, "epochs": 1, "max_batches_per_epoch": 1})
    result = train(config, mouth_data, workdir=tmp_path)
    expected = Provenance.of(mouth_data, split_data(mouth_data, seed=config.seed)).as_dict()
    assert result.provenance == expected and result.metrics["provenance"] == expected
    for name in ("last.pt", "best.pt"):
        saved = torch.load(tmp_path / name, weights_only=True)  # both load without unpickling code
        assert saved["format"] == FORMAT and saved["config"] == config.to_dict() and saved["epoch"] == 1
        assert {k: saved[k] for k in expected} == expected
        assert saved["torch_version"] == str(torch.__version__) and saved["code_version"]
    assert "optimizer" in torch.load(tmp_path / "last.pt", weights_only=True)
    assert "optimizer" not in torch.load(tmp_path / "best.pt", weights_only=True)


# ---------------------------------------------------------------- resume

def old_format(checkpoint: dict) -> dict:
    """A checkpoint as the trainer wrote it before provenance: format 1, NumPy RNG state, and
    best.pt's accuracy under val_accuracy."""
    old = {k: v for k, v in checkpoint.items() if k not in ("dataset_sha256", "code_version", "torch_version")}
    old["format"] = 1
    if "rng" in old:
        rng = old["rng"]["numpy"]
        old["rng"] = {**old["rng"], "numpy": (rng["name"], rng["keys"].numpy().astype(np.uint32), rng["pos"],
                                              rng["has_gauss"], rng["cached_gaussian"])}
    else:
        old["val_accuracy"] = old.pop("best_val_accuracy")
    return old


def test_a_run_checkpointed_in_the_old_format_resumes(mouth_data, tmp_path):
    config = TrainConfig.from_dict({**QUICK, "epochs": 2, "max_batches_per_epoch": 2})
    asked = []
    with pytest.raises(TrainingCancelled):
        train(config, mouth_data, workdir=tmp_path, should_stop=lambda: asked.append(1) or len(asked) > 2)
    for name in ("last.pt", "best.pt"):
        torch.save(old_format(torch.load(tmp_path / name, weights_only=True)), tmp_path / name)

    best = load_checkpoint(tmp_path / "best.pt")
    assert best["format"] == 1 and best["best_val_accuracy"] == best["val_accuracy"] and best["dataset_sha256"] is None
    events = []
    resumed = train(config, mouth_data, workdir=tmp_path, on_event=events.append)
    assert resumed.resumed_from_epoch == 1 and "resumed after epoch 1" in events[0]["message"]
    assert [h["epoch"] for h in resumed.history] == [1, 2]
    assert any("predates dataset hashes" in note for note in resumed.notes)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["format"] == FORMAT  # rewritten in the new one


def test_resuming_on_other_data_is_refused(mouth_data, tmp_path):
    config = TrainConfig.from_dict({**QUICK, "epochs": 1, "max_batches_per_epoch": 1})
    train(config, mouth_data, workdir=tmp_path)
    pixels = mouth_data.pixels.copy()
    pixels[0, 0, 0] ^= 1  # one pixel of one face
    with pytest.raises(DatasetChanged) as caught:
        train(config, TrainData(pixels, mouth_data.labels, mouth_data.splits), workdir=tmp_path)
    assert isinstance(caught.value, DataError)  # the worker fails the run as invalid_data
    assert "last.pt was trained on other data" in str(caught.value) and "--no-resume" in str(caught.value)
    # Not resuming trains the new data from scratch.
    fresh = train(config, TrainData(pixels, mouth_data.labels, mouth_data.splits), workdir=tmp_path, resume=False)
    assert fresh.resumed_from_epoch == 0
