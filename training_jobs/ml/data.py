"""Training data in memory, its train/validation/test split, and loading dataset files without Django.

A dataset is three arrays: 48x48 uint8 faces, labels in FER2013 class order and the name of the
split each face came with ("train", "val", "test", FER2013's "PublicTest", ...). The split rules:
validation is the dataset's own validation split when it has one, else a stratified, seeded share
of training; test is the dataset's own test split when it has one, else the validation split
(and the result says so).

Dataset files are read by the dataset import's own reader (`fercore.readers.read_dataset`:
the same archive guard, image decoder and face finding, no Django), so the command line here and
`manage.py train` train on the same pixels from the same zip.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fercore.classes import CLASSES
from fercore.preprocess import FACE_SIZE
from fercore.readers import DatasetError, read_dataset

VALIDATION_NAMES = ("val", "validation", "valid", "publictest", "dev")
TEST_NAMES = ("test", "testing", "privatetest")


class DataError(ValueError):
    """The data cannot be trained on; the message says why."""


@dataclass
class TrainData:
    pixels: np.ndarray  # uint8 [N, 48, 48]
    labels: np.ndarray  # int64 [N], index into CLASSES
    splits: np.ndarray  # str [N], the split names the dataset came with

    def __post_init__(self):
        self.pixels = np.ascontiguousarray(self.pixels, dtype=np.uint8)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        self.splits = np.asarray(self.splits, dtype=str)
        n = len(self.pixels)
        if self.pixels.shape[1:] != (FACE_SIZE, FACE_SIZE) or len(self.labels) != n or len(self.splits) != n:
            raise DataError(
                f"expected pixels [N, 48, 48] with N labels and N split names, got {self.pixels.shape}, "
                f"{self.labels.shape}, {self.splits.shape}")
        if n and (self.labels.min() < 0 or self.labels.max() >= len(CLASSES)):
            raise DataError(f"labels must be 0..{len(CLASSES) - 1} ({', '.join(CLASSES)})")

    def __len__(self):
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "TrainData":
        return TrainData(self.pixels[index], self.labels[index], self.splits[index])


def split_role(name: str) -> str:
    """Map a dataset's split name onto train / val / test."""
    key = str(name).strip().lower().replace("_", "").replace("-", "")
    if key in VALIDATION_NAMES:
        return "val"
    if key in TEST_NAMES:
        return "test"
    return "train"


def split_roles(splits: np.ndarray) -> np.ndarray:
    """split_role of every face's split name (str [N]), worked out once per distinct name."""
    names, inverse = np.unique(np.asarray(splits, dtype=str), return_inverse=True)
    return np.array([split_role(name) for name in names], dtype=str)[inverse] if len(names) else np.array([], dtype=str)


@dataclass
class DataSplits:
    train: np.ndarray  # indices into the TrainData
    val: np.ndarray
    test: np.ndarray
    val_source: str  # e.g. "PublicTest" or "10% of train (stratified, seed 42)"
    test_source: str
    notes: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        return {
            "train": int(len(self.train)), "val": int(len(self.val)), "test": int(len(self.test)),
            "val_source": self.val_source, "test_source": self.test_source, "notes": list(self.notes),
        }


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions (into labels) kept for training and held out, the same share from every class."""
    rng = np.random.default_rng(seed)
    keep, held = [], []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        members = members[rng.permutation(len(members))]
        count = int(round(len(members) * fraction))
        if count == 0 and len(members) >= 2:
            count = 1  # every class present in validation when it can be
        held.append(members[:count])
        keep.append(members[count:])
    return np.sort(np.concatenate(keep)), np.sort(np.concatenate(held))


def split_data(data: TrainData, *, validation_fraction: float = 0.1, seed: int = 42) -> DataSplits:
    return split_arrays(data.labels, data.splits, validation_fraction=validation_fraction, seed=seed)


def split_arrays(labels: np.ndarray, splits: np.ndarray, *, validation_fraction: float = 0.1,
                 seed: int = 42) -> DataSplits:
    """split_data on the labels and split names alone (no faces needed)."""
    roles = split_roles(splits)
    notes = []
    names_by_role = {}
    for role in ("val", "test"):
        names = sorted(set(splits[roles == role]))
        names_by_role[role] = "+".join(names)
    train = np.flatnonzero(roles == "train")
    if len(train) == 0:
        raise DataError("the dataset has no training faces (every face is in a validation or test split)")
    val = np.flatnonzero(roles == "val")
    if len(val):
        val_source = names_by_role["val"]
    else:
        keep, held = stratified_holdout(labels[train], validation_fraction, seed)
        train, val = train[keep], train[held]
        val_source = f"{validation_fraction:.0%} of train (stratified, seed {seed})"
    if len(val) == 0:
        raise DataError("too few faces to hold out a validation split; add more faces or a validation split")
    test = np.flatnonzero(roles == "test")
    if len(test):
        test_source = names_by_role["test"]
    else:
        test = val
        test_source = f"validation ({val_source})"
        notes.append("The dataset has no test split: the evaluation uses the validation split, which also chose "
                     "the checkpoint, so it is optimistic.")
    return DataSplits(train=train, val=val, test=test, val_source=val_source, test_source=test_source, notes=notes)


# ---------------------------------------------------------------- loading files (command line, benchmarks)

def load_dataset_file(path: str | Path) -> TrainData:
    """A zip or folder of [split/]<class>/<image>, a FER2013 CSV, or an .npz with pixels, labels, splits.

    Everything but .npz is read as an upload is imported (read_dataset with the default limits and
    face detector): photos larger than a crop have their faces found and cropped. Unlike an upload,
    folders that name no class are left out instead of refused, as this loader always did.
    """
    path = Path(path)
    if path.suffix.lower() == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as npz:
            splits = npz["splits"] if "splits" in npz else np.full(len(npz["labels"]), "train")
            return TrainData(npz["pixels"], npz["labels"], splits)
    try:
        result = read_dataset(path, drop_unknown_classes=True)
    except (DatasetError, FileNotFoundError) as error:
        raise DataError(f"cannot read {path.name!r}: {error}") from None
    if not len(result):
        raise DataError(f"no labelled faces found in {path.name!r}; expected [split/]<class>/<image> folders "
                        f"({len(result.skipped)} files unreadable, {len(result.no_face)} photos without a face)")
    return TrainData(result.pixels, result.labels, result.splits)


def class_counts(labels: np.ndarray) -> np.ndarray:
    return np.bincount(labels, minlength=len(CLASSES))
