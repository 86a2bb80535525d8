"""Training data in memory, its train/validation/test split, and loading dataset files without Django.

A dataset is three arrays: 48x48 uint8 faces, labels in FER2013 class order and the name of the
split each face came with ("train", "val", "test", FER2013's "PublicTest", ...). The split rules:
validation is the dataset's own validation split when it has one, else a stratified, seeded share
of training; test is the dataset's own test split when it has one, else the validation split
(and the result says so).
"""
from __future__ import annotations

import csv
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inference.preprocess import FACE_SIZE, resize_face
from training_jobs.ml import CLASSES

VALIDATION_NAMES = ("val", "validation", "valid", "publictest", "dev")
TEST_NAMES = ("test", "testing", "privatetest")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".pgm", ".webp", ".tif", ".tiff")


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
    roles = np.array([split_role(s) for s in data.splits]) if len(data) else np.array([], dtype=str)
    notes = []
    names_by_role = {}
    for role in ("val", "test"):
        names = sorted(set(data.splits[roles == role]))
        names_by_role[role] = "+".join(names)
    train = np.flatnonzero(roles == "train")
    if len(train) == 0:
        raise DataError("the dataset has no training faces (every face is in a validation or test split)")
    val = np.flatnonzero(roles == "val")
    if len(val):
        val_source = names_by_role["val"]
    else:
        keep, held = stratified_holdout(data.labels[train], validation_fraction, seed)
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

def _decode(raw: bytes) -> np.ndarray | None:
    image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_GRAYSCALE)
    return None if image is None else resize_face(image)


def _from_entries(entries) -> TrainData:
    """entries: iterable of (relative path parts, bytes reader). Layout [split/]class/file."""
    # Only the file loaders need the class-name synonyms; importing them loads the project package.
    from ferweb.classes import canonical_class

    pixels, labels, splits = [], [], []
    for parts, read in entries:
        if len(parts) < 2 or not parts[-1].lower().endswith(IMAGE_SUFFIXES) or parts[-1].startswith("."):
            continue
        cls = canonical_class(parts[-2])
        if cls is None:
            continue
        face = _decode(read())
        if face is None:
            continue
        split = parts[-3] if len(parts) >= 3 else "train"
        pixels.append(face)
        labels.append(CLASSES.index(cls))
        splits.append(split)
    if not pixels:
        raise DataError("no labelled faces found; expected [split/]<class>/<image> folders")
    return TrainData(np.stack(pixels), np.array(labels), np.array(splits))


def _from_csv(text: str) -> TrainData:
    """FER2013 CSV: emotion (0-6), pixels (2,304 space-separated values), optional Usage."""
    reader = csv.DictReader(io.StringIO(text))
    pixels, labels, splits = [], [], []
    for row in reader:
        values = np.array(row["pixels"].split(), dtype=np.uint8)
        if values.size != FACE_SIZE * FACE_SIZE:
            continue
        pixels.append(values.reshape(FACE_SIZE, FACE_SIZE))
        labels.append(int(row["emotion"]))
        splits.append(row.get("Usage") or "train")
    if not pixels:
        raise DataError("no rows with 2,304 pixels found; expected FER2013 columns emotion,pixels[,Usage]")
    return TrainData(np.stack(pixels), np.array(labels), np.array(splits))


def load_dataset_file(path: str | Path) -> TrainData:
    """A zip or folder of [split/]<class>/<image>, a FER2013 CSV, or an .npz with pixels, labels, splits."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        return _from_entries(((p.relative_to(path).parts, p.read_bytes) for p in files))
    suffix = path.suffix.lower()
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            splits = npz["splits"] if "splits" in npz else np.full(len(npz["labels"]), "train")
            return TrainData(npz["pixels"], npz["labels"], splits)
    if suffix == ".csv":
        return _from_csv(path.read_text())
    if suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if not n.endswith("/") and "__MACOSX" not in n)
            csvs = [n for n in names if n.lower().endswith(".csv")]
            if csvs and not any(n.lower().endswith(IMAGE_SUFFIXES) for n in names):
                return _from_csv(archive.read(csvs[0]).decode())
            return _from_entries(((tuple(n.split("/")), (lambda n=n: archive.read(n))) for n in names))
    raise DataError(f"unsupported dataset file {path.name!r}; use a .zip, a folder, a .csv or an .npz")


def class_counts(labels: np.ndarray) -> np.ndarray:
    return np.bincount(labels, minlength=len(CLASSES))
