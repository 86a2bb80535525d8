"""One checkpoint format, written by `save_checkpoint` and read by `load_checkpoint`.

A run keeps two checkpoints in its workdir: `last.pt` after every epoch (what a resume needs) and
`best.pt` on every better validation accuracy (the weights that are evaluated, exported, fine-tuned
from and distilled from). Both hold:

- `format` (FORMAT), `model` (the state_dict), `epoch`, `best_val_accuracy`;
- `config` (the whole `TrainConfig` as a dict), `architecture`, `classes`;
- where they came from: `dataset_sha256` (`dataset_sha256()`: the faces, labels and split the run
  trained on), `code_version` (`code_version()`) and `torch_version`.

`last.pt` adds RESUME_KEYS: optimizer, schedule, gradient scaler and weight average states, the
epoch history, the early-stopping counters, the wall time so far and the RNG states. Everything is
tensors and plain Python values, so `torch.load(path, weights_only=True)` reads either file.

Format 1 (before the provenance fields) still loads: its missing fields read as None, its best.pt's
`val_accuracy` as `best_val_accuracy`, and its last.pt (NumPy RNG state inside) only with
`trusted=True`, which a run's own workdir is.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import pickle
import random
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from training_jobs.ml import CLASSES
from training_jobs.ml.data import DataError, DataSplits, TrainData

FORMAT = 2
READABLE_FORMATS = (1, 2)
PROVENANCE_KEYS = ("dataset_sha256", "code_version", "torch_version")
RESUME_KEYS = ("optimizer", "schedule", "scaler", "ema", "history", "best_epoch", "epochs_without_improvement",
               "stopped_early", "wall_time_s", "rng")
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the checkout, when the code runs from one


class CheckpointError(ValueError):
    """The file is not a FERWeb checkpoint that this code can read; the message says why."""


class DatasetChanged(DataError):
    """A checkpoint was trained on other data than the run has now."""


@dataclass(frozen=True)
class Provenance:
    """What a checkpoint was made from, computed once per run."""

    dataset_sha256: str
    code_version: str
    torch_version: str

    @classmethod
    def of(cls, data: TrainData, splits: DataSplits) -> Provenance:
        return cls(dataset_sha256(data, splits), code_version(), str(torch.__version__))

    def as_dict(self) -> dict:
        return asdict(self)


def dataset_sha256(data: TrainData, splits: DataSplits) -> str:
    """SHA-256 of what a run trains, validates and tests on, in a fixed order: the pixel bytes
    (uint8 [N, 48, 48]), the labels, then the train, validation and test indices (int64, little
    endian), each array preceded by its name and shape. The same faces split the same way hash the
    same on any machine; one changed pixel, label or split membership changes it."""
    digest = hashlib.sha256()
    for name, array, dtype in (("pixels", data.pixels, np.uint8), ("labels", data.labels, "<i8"),
                               ("train", splits.train, "<i8"), ("val", splits.val, "<i8"),
                               ("test", splits.test, "<i8")):
        array = np.ascontiguousarray(array, dtype=dtype)
        digest.update(f"{name}{list(array.shape)}".encode())
        digest.update(array)  # the array's own buffer: no copy of the faces
    return digest.hexdigest()


def code_version() -> str:
    """`git describe --always --dirty` of the checkout the code runs from; else the installed
    package's version (`importlib.metadata`); else "unknown"."""
    if (SOURCE_ROOT / ".git").exists():
        try:
            described = subprocess.run(
                ["git", "-C", str(SOURCE_ROOT), "describe", "--always", "--dirty"], capture_output=True, text=True,
                timeout=10, check=True, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # never lock the index
            ).stdout.strip()
            if described:
                return described
        except (OSError, subprocess.SubprocessError):
            pass  # no git, or not a repository after all
    try:
        return importlib.metadata.version("ferweb")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def save_checkpoint(path, *, model: dict, epoch: int, best_val_accuracy: float, config: dict,
                    provenance: Provenance, **resume) -> None:
    """Write a checkpoint atomically (a worker killed mid-write leaves the previous file whole).
    `resume`: the RESUME_KEYS that last.pt adds; best.pt passes none."""
    unknown = set(resume) - set(RESUME_KEYS)
    if unknown:
        raise TypeError(f"not checkpoint fields: {', '.join(sorted(unknown))} (known: {', '.join(RESUME_KEYS)})")
    checkpoint = {
        "format": FORMAT, "model": model, "epoch": epoch, "best_val_accuracy": best_val_accuracy,
        "config": dict(config), "architecture": config["architecture"], "classes": list(CLASSES),
        **provenance.as_dict(), **resume,
    }
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(checkpoint, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, *, trusted: bool = False) -> dict:
    """The checkpoint at `path`, with every field of the current format (None where an older file
    lacks it). Reads tensors and plain values only, unless `trusted` (a run's own workdir) lets a
    format-1 last.pt unpickle its NumPy RNG state. Raises CheckpointError for anything else."""
    path = Path(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not trusted:
            raise CheckpointError(f"{path.name} holds more than tensors and plain values: {str(exc)[:200]}") from None
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or checkpoint.get("format") not in READABLE_FORMATS:
        found = checkpoint.get("format") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CheckpointError(f"{path.name} is not a FERWeb checkpoint of format "
                              f"{' or '.join(map(str, READABLE_FORMATS))} (found {found!r})")
    checkpoint = dict(checkpoint)
    if "best_val_accuracy" not in checkpoint:  # a format-1 best.pt
        checkpoint["best_val_accuracy"] = checkpoint.get("val_accuracy")
    for key in PROVENANCE_KEYS:
        checkpoint.setdefault(key, None)
    checkpoint.setdefault("architecture", (checkpoint.get("config") or {}).get("architecture"))
    return checkpoint


def check_same_data(checkpoint: dict, provenance: Provenance, name: str) -> None:
    """Raise DatasetChanged when the checkpoint records other data than `provenance`'s; a
    checkpoint that records none (format 1) passes."""
    saved = checkpoint.get("dataset_sha256")
    if saved and saved != provenance.dataset_sha256:
        raise DatasetChanged(
            f"{name} was trained on other data (dataset SHA-256 {saved[:12]}..., this data "
            f"{provenance.dataset_sha256[:12]}...): resuming would continue the run on different faces. "
            "Train in a new run (on the command line: another --workdir, or --no-resume).")


def rng_state() -> dict:
    """The torch, NumPy, Python (and CUDA) RNG states as tensors and plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Restore rng_state(); also reads format 1's NumPy tuple."""
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    if isinstance(numpy_state, dict):
        numpy_state = (numpy_state["name"], numpy_state["keys"].numpy().astype(np.uint32), numpy_state["pos"],
                       numpy_state["has_gauss"], numpy_state["cached_gaussian"])
    np.random.set_state(numpy_state)
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
