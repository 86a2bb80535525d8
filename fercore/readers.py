"""Reading face datasets from disk: zip archives, folder trees and the FER2013 CSV.

Pure Python + NumPy, Pillow and OpenCV (no Django), so the import job, `evaluate_model`, the ML
command line (`training_jobs.ml.data.load_dataset_file`) and a notebook all read data the same way.
Zips are opened by the one guarded zip reader (`fercore.archive`) and images decoded by the one
guarded image reader that serving uses too (`fercore.images`); limits are arguments (`Limits`).
Every accepted image ends up as a 48x48 uint8 grayscale face with a class index
(`fercore.classes` order) and a split name.

Layouts understood:
- `<class>/<image>` and `<split>/<class>/<image>`, in a zip or a directory, optionally
  below one wrapping folder; split folder names are kept as given, no split -> "train";
- the original `fer2013.csv` (`emotion,pixels[,Usage]`), alone or as the only CSV in a zip.
Images that are not in a class folder are not labeled and are refused: they have to be
labeled first.
"""
from __future__ import annotations

import csv
import io
import os
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

import numpy as np

from fercore.archive import ArchiveError, GuardedZip, Limits, UnreadableMember, is_system_file
from fercore.classes import CLASS_INDEX, CLASSES, canonical_class
from fercore.images import IMPORT_FORMATS, ImageDecodeError, decode_image, is_image_name
from fercore.preprocess import FACE_SIZE, crop_face, resize_face

# Images up to this side are taken as face crops already; larger ones go through detection.
FACE_CROP_MAX_SIDE = 2 * FACE_SIZE
DEFAULT_SPLIT = "train"
SPLIT_NAMES = {
    "train", "training", "test", "testing", "val", "valid", "validation", "dev",
    "publictest", "privatetest", "holdout",
}
CSV_COLUMNS = ("emotion", "pixels")
PIXELS_PER_FACE = FACE_SIZE * FACE_SIZE
LISTED_NAMES = 10


class DatasetError(Exception):
    """The whole input is refused; `code` is machine-readable, the message is for a person."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class ReadResult:
    pixels: np.ndarray  # uint8 [N, 48, 48]
    labels: np.ndarray  # int64 [N], index into CLASSES
    splits: np.ndarray  # str [N]
    source_names: list[str]  # member path, with "#k" for the k-th face of a photo
    skipped: list[dict] = field(default_factory=list)  # {"name", "reason"}: corrupt or not an image
    no_face: list[dict] = field(default_factory=list)  # {"name", "reason"}: photos without a usable face
    dropped: dict = field(default_factory=dict)  # {folder name: files} left out by drop_unknown_classes
    source_format: str = ""
    detected: int = 0  # faces found by detection (photos larger than a crop)

    def __len__(self) -> int:
        return len(self.labels)


ProgressFn = Callable[[float], None]


def _listing(names) -> str:
    names = sorted(names)
    shown = ", ".join(names[:LISTED_NAMES])
    return shown + (f" and {len(names) - LISTED_NAMES} more" if len(names) > LISTED_NAMES else "")


def _valid_classes() -> str:
    return ", ".join(CLASSES)


# ---------------------------------------------------------------- images -> faces


class FaceExtractor:
    """Turns decoded images into 48x48 faces; detection only for images larger than a crop."""

    def __init__(self, detector=None):
        self._detector = detector

    @property
    def detector(self):
        if self._detector is None:
            from fercore.faces import FaceDetector

            self._detector = FaceDetector()
        return self._detector

    def faces(self, gray: np.ndarray) -> tuple[list[np.ndarray], str]:
        """(faces, reason): no faces comes with the reason why."""
        height, width = gray.shape[:2]
        if max(height, width) <= FACE_CROP_MAX_SIDE:
            return [resize_face(gray)], ""
        found = self.detector.detect(gray)
        usable = [face for face in found if not face.too_small]
        if not usable:
            return [], "faces too small" if found else "no face found"
        return [crop_face(gray, face.box) for face in usable], ""


def decode_gray(data: bytes, max_pixels: int) -> tuple[np.ndarray | None, str]:
    """(gray uint8 image, "") or (None, why it was skipped), through the one guarded reader.

    The pixel count is read from the header and checked before anything is decoded, so a
    bomb costs microseconds; import and serving decode alike (see fercore.images).
    """
    try:
        return decode_image(data, max_pixels=max_pixels, formats=IMPORT_FORMATS), ""
    except ImageDecodeError as error:
        # A bomb or a format outside the list is named as such; any other failure is plain damage.
        if error.code in ("too_many_pixels", "unsupported_format"):
            return None, error.message
        return None, "not an image or corrupt"


# ---------------------------------------------------------------- folder layouts


@dataclass
class _Entry:
    name: str  # path inside the archive or below the root folder, with "/"
    class_name: str  # folder name as given ("" when the image is in no folder)
    split: str


def _layout(names: list[str]) -> list[_Entry]:
    """Assign class and split to each file path from its folders.

    The class is the innermost folder; the folder above it is the split when it has a
    split's name (train, test, val, PublicTest...). One wrapping folder around
    everything (a zipped folder of class folders) is allowed and ignored.
    """
    entries = []
    paths = [PurePosixPath(n).parts for n in names]
    wrapped = (
        len(paths) > 0
        and all(len(p) >= 3 for p in paths)  # wrapper/class/image at least: "x/img.jpg" names a class x
        and len({p[0] for p in paths}) == 1
        and canonical_class(paths[0][0]) is None
        and paths[0][0].lower() not in SPLIT_NAMES
    )
    for name, parts in zip(names, paths):
        folders = parts[1:-1] if wrapped else parts[:-1]
        class_name = folders[-1] if folders else ""
        split = folders[-2] if len(folders) >= 2 and folders[-2].lower() in SPLIT_NAMES else DEFAULT_SPLIT
        if len(folders) == 1 and class_name.lower() in SPLIT_NAMES:
            class_name = ""  # train/x.jpg: a split folder without class folders
        entries.append(_Entry(name=name, class_name=class_name, split=split))
    return entries


def _check_classes(entries: list[_Entry], drop_unknown_classes: bool) -> tuple[list[_Entry], dict]:
    """Keep entries whose folder maps onto a class; refuse (or drop) the rest."""
    unlabeled = [e.name for e in entries if not e.class_name]
    unknown: dict[str, int] = {}
    for e in entries:
        if e.class_name and canonical_class(e.class_name) is None:
            unknown[e.class_name] = unknown.get(e.class_name, 0) + 1
    if not drop_unknown_classes:
        if unlabeled and len(unlabeled) == len(entries):
            raise DatasetError(
                "unlabeled_images",
                f"The {len(unlabeled)} images are not in class folders ({_listing(unlabeled)}), so they have no "
                f"labels. Put each image in a folder named after its class ({_valid_classes()}), optionally "
                "inside split folders (train/, test/, val/), or label the photos on the Labeling page first.",
            )
        if unknown or unlabeled:
            parts = []
            if unknown:
                parts.append(f"Unknown class folders: {_listing(unknown)}.")
            if unlabeled:
                parts.append(f"{len(unlabeled)} images are in no class folder ({_listing(unlabeled)}).")
            raise DatasetError(
                "unknown_classes",
                " ".join(parts) + f" Valid class names: {_valid_classes()} (synonyms such as anger, happiness, "
                "sadness and surprised work too). Rename the folders, or tick \"drop unknown classes\" to leave "
                "them out.",
            )
    dropped = dict(unknown)
    if unlabeled:
        dropped["(no class folder)"] = len(unlabeled)
    kept = [e for e in entries if e.class_name and canonical_class(e.class_name) is not None]
    if not kept:
        raise DatasetError(
            "no_known_classes",
            f"No folder of this upload maps onto a class (found: {_listing(dropped)}). "
            f"Valid class names: {_valid_classes()}.",
        )
    return kept, dropped


def _plan(names: list[str], drop_unknown_classes: bool) -> tuple[list[_Entry], dict, list[dict]]:
    """(entries to read, dropped class folders, files set aside) for a list of member paths.

    Files with a non-image extension (README.md, labels.json...) are set aside first, so
    they neither need a class folder nor make a folder look like a class.
    """
    images, extras = [], []
    for name in names:
        if PurePosixPath(name).suffix and not is_image_name(name):  # no suffix at all: tried as an image
            extras.append({"name": name, "reason": "not an image (by its extension)"})
        else:
            images.append(name)
    if not images:
        raise DatasetError("no_images", f"No images found, only other files ({_listing(e['name'] for e in extras)}).")
    entries, dropped = _check_classes(_layout(images), drop_unknown_classes)
    return entries, dropped, extras


class _Collector:
    """Accumulates faces in growing arrays and reports throttled progress."""

    def __init__(self, expected: int, progress: ProgressFn | None):
        self.pixels = np.empty((max(expected, 16), FACE_SIZE, FACE_SIZE), dtype=np.uint8)
        self.labels: list[int] = []
        self.splits: list[str] = []
        self.names: list[str] = []
        self.progress = progress
        self.last_report = 0.0

    def add(self, face: np.ndarray, label: int, split: str, name: str) -> None:
        n = len(self.labels)
        if n == len(self.pixels):
            self.pixels = np.concatenate([self.pixels, np.empty_like(self.pixels)])
        self.pixels[n] = face
        self.labels.append(label)
        self.splits.append(split)
        self.names.append(name)

    def tick(self, fraction: float) -> None:
        now = time.monotonic()
        if self.progress and now - self.last_report >= 0.5:
            self.last_report = now
            self.progress(min(1.0, fraction))

    def result(self, source_format: str, **extra) -> ReadResult:
        n = len(self.labels)
        if self.progress:
            self.progress(1.0)
        return ReadResult(
            pixels=self.pixels[:n].copy() if n < len(self.pixels) else self.pixels,
            labels=np.asarray(self.labels, dtype=np.int64),
            splits=np.asarray(self.splits, dtype=str) if n else np.empty(0, dtype="<U5"),
            source_names=self.names,
            source_format=source_format,
            **extra,
        )


def _read_images(
    entries: list[_Entry],
    read_bytes: Callable[[str], bytes],
    *,
    detector,
    progress: ProgressFn | None,
    source_format: str,
    dropped: dict,
    limits: Limits,
) -> ReadResult:
    extractor = FaceExtractor(detector)
    out = _Collector(len(entries), progress)
    skipped, no_face = [], []
    detected = 0
    total = max(1, len(entries))
    for i, entry in enumerate(entries):
        out.tick(i / total)
        try:
            data = read_bytes(entry.name)
        except (UnreadableMember, OSError) as error:
            skipped.append({"name": entry.name, "reason": f"unreadable: {error}"})
            continue
        gray, why = decode_gray(data, limits.max_image_pixels)
        if gray is None:
            skipped.append({"name": entry.name, "reason": why})
            continue
        faces, reason = extractor.faces(gray)
        if not faces:
            no_face.append({"name": entry.name, "reason": reason})
            continue
        label = CLASS_INDEX[canonical_class(entry.class_name)]
        if len(faces) == 1 and max(gray.shape) <= FACE_CROP_MAX_SIDE:
            out.add(faces[0], label, entry.split, entry.name)
        else:
            detected += len(faces)
            for k, face in enumerate(faces, start=1):
                out.add(face, label, entry.split, f"{entry.name}#{k}")
    return out.result(source_format, skipped=skipped, no_face=no_face, dropped=dropped, detected=detected)


# ---------------------------------------------------------------- zip


def _zip_members(files: list[zipfile.ZipInfo]) -> tuple[list[str], list[str]]:
    """(image-or-other member names, CSV member names), hidden and system files left out."""
    names, csvs = [], []
    for info in files:
        if is_system_file(info.filename):
            continue
        (csvs if info.filename.lower().endswith(".csv") else names).append(info.filename)
    return names, csvs


def _open_zip(path: Path, limits: Limits) -> GuardedZip:
    """The zip through the one archive guard (safety checks from the central directory alone)."""
    try:
        archive = GuardedZip(path, limits)
    except ArchiveError as error:
        raise DatasetError(error.code, error.message) from error
    if not archive.files:
        archive.close()
        raise DatasetError("empty_archive", "The zip is empty: it holds no files.")
    return archive


def _read_zip(path, *, detector, drop_unknown_classes, limits, progress) -> ReadResult:
    with _open_zip(path, limits) as archive:
        names, csvs = _zip_members(archive.files)
        if not names and len(csvs) == 1:
            with archive.open(csvs[0]) as raw:
                return _read_csv_stream(io.TextIOWrapper(raw, encoding="utf-8-sig", newline=""), progress, "zip+csv")
        if not names:
            raise DatasetError("empty_archive", "The zip holds no images (only hidden or system files).")
        entries, dropped, extras = _plan(names, drop_unknown_classes)
        result = _read_images(
            entries, archive.read, detector=detector, progress=progress, source_format="zip", dropped=dropped,
            limits=limits,
        )
        result.skipped[:0] = extras
        return result


def check_zip(path, *, drop_unknown_classes: bool = False, limits: Limits = Limits()) -> dict:
    """The checks that need no decoding (safety, layout, class names): fast enough for an upload request."""
    with _open_zip(path, limits) as archive:
        names, csvs = _zip_members(archive.files)
        if not names and len(csvs) == 1:
            with archive.open(csvs[0]) as raw:
                _check_csv_header(io.TextIOWrapper(raw, encoding="utf-8-sig", newline="").readline())
            return {"format": "zip+csv", "files": 1}
        if not names:
            raise DatasetError("empty_archive", "The zip holds no images (only hidden or system files).")
        entries, dropped, _ = _plan(names, drop_unknown_classes)
        return {"format": "zip", "files": len(entries), "dropped": dropped}


# ---------------------------------------------------------------- directory tree


def _read_directory(root: Path, *, detector, drop_unknown_classes, limits, progress) -> ReadResult:
    names, symlinks, total = [], [], 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (Path(folder) / d).is_symlink())
        for file in sorted(files):
            full = Path(folder) / file
            rel = full.relative_to(root).as_posix()
            if is_system_file(rel):
                continue
            if full.is_symlink():
                symlinks.append({"name": rel, "reason": "symbolic link, not followed"})
                continue
            names.append(rel)
            total += full.stat().st_size
            if len(names) > limits.max_members:
                raise DatasetError(
                    "too_many_members", f"Refused: the folder holds over {limits.max_members:,} files."
                )
    if total > limits.max_uncompressed_bytes:
        raise DatasetError("too_large_uncompressed", f"Refused: the folder holds {total / 1024**2:,.0f} MB.")
    csvs = [n for n in names if n.lower().endswith(".csv")]
    images = [n for n in names if not n.lower().endswith(".csv")]
    if not images and len(csvs) == 1:
        return read_dataset(root / csvs[0], progress=progress)
    if not images:
        raise DatasetError("empty_archive", f"The folder {root} holds no images.")
    entries, dropped, extras = _plan(images, drop_unknown_classes)
    result = _read_images(
        entries, lambda name: (root / name).read_bytes(), detector=detector, progress=progress,
        source_format="directory", dropped=dropped, limits=limits,
    )
    result.skipped[:0] = extras + symlinks
    return result


# ---------------------------------------------------------------- FER2013 CSV


def _check_csv_header(line: str) -> list[str]:
    header = [column.strip().strip('"').lower() for column in next(csv.reader([line]), [])]
    if not all(column in header for column in CSV_COLUMNS):
        found = ",".join(header) if header else "nothing"
        raise DatasetError(
            "csv_columns",
            f"Line 1: expected the FER2013 columns emotion,pixels (and optionally Usage), found {found}.",
        )
    return header


def _parse_pixels(field: str, line: int) -> np.ndarray:
    """2304 space-separated integers 0-255 -> uint8 48x48; DatasetError naming the line otherwise."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            face = np.fromstring(field, dtype=np.int64, sep=" ")  # the fast path for well-formed rows
    except ValueError:
        face = np.empty(0, dtype=np.int64)
    if face.size != PIXELS_PER_FACE or field.strip().count(" ") != PIXELS_PER_FACE - 1:
        # Not one clean row of single-spaced numbers: look closer, to say exactly what is wrong.
        values = field.split()
        if len(values) != PIXELS_PER_FACE:
            raise DatasetError(
                "csv_row",
                f"Line {line}: pixels must be {PIXELS_PER_FACE} integers (48x48) separated by spaces, "
                f"found {len(values)} values.",
            )
        bad = next((v for v in values if not v.isdigit()), None)
        if bad is not None:
            raise DatasetError("csv_row", f"Line {line}: pixels must be integers from 0 to 255, found {bad[:20]!r}.")
        face = np.array(values, dtype=np.int64)
    if face.min() < 0 or face.max() > 255:
        raise DatasetError("csv_row", f"Line {line}: pixels must be integers from 0 to 255.")
    return face.astype(np.uint8).reshape(FACE_SIZE, FACE_SIZE)


def _read_csv_stream(text: io.TextIOBase, progress: ProgressFn | None, source_format: str, size: int = 0) -> ReadResult:
    """Stream the rows: memory holds the faces, never the whole file."""
    reader = csv.reader(text)
    try:
        first = next(reader)
    except StopIteration:
        raise DatasetError("empty_archive", "The CSV file is empty.") from None
    except (csv.Error, UnicodeDecodeError) as error:
        raise DatasetError("csv_columns", f"Line 1: not a readable CSV header ({error}).") from error
    header = _check_csv_header(",".join(first))
    col_emotion, col_pixels = header.index("emotion"), header.index("pixels")
    col_usage = header.index("usage") if "usage" in header else None
    out = _Collector(1024, progress)
    line = 1
    try:
        for row in reader:
            line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) < len(header):
                raise DatasetError(
                    "csv_row", f"Line {line}: expected {len(header)} columns ({','.join(header)}), found {len(row)}."
                )
            raw_label = row[col_emotion].strip()
            if raw_label.isdigit() and int(raw_label) < len(CLASSES):
                label = int(raw_label)
            elif canonical_class(raw_label) is not None:
                label = CLASS_INDEX[canonical_class(raw_label)]
            else:
                raise DatasetError(
                    "csv_row",
                    f"Line {line}: emotion {raw_label!r} is not a class: use 0-6 or a name "
                    f"({_valid_classes()}).",
                )
            face = _parse_pixels(row[col_pixels], line)
            split = row[col_usage].strip() if col_usage is not None and row[col_usage].strip() else DEFAULT_SPLIT
            out.add(face, label, split, f"line {line}")
            if size and line % 256 == 0:
                out.tick(text.buffer.tell() / size if hasattr(text, "buffer") else 0.0)
    except (csv.Error, UnicodeDecodeError) as error:
        raise DatasetError("csv_row", f"Line {line + 1}: not readable as CSV text ({error}).") from error
    if not out.labels:
        raise DatasetError("empty_archive", "The CSV file holds a header but no faces.")
    return out.result(source_format)


def _looks_like_csv(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return "," in text.split("\n", 1)[0]


def sniff_format(path: Path) -> str:
    """"directory", "zip" or "csv"; anything else is refused with the formats that work."""
    path = Path(path)
    if path.is_dir():
        return "directory"
    with open(path, "rb") as handle:
        head = handle.read(64 * 1024)
    if head[:2] == b"PK":
        return "zip"
    if zipfile.is_zipfile(path):
        return "zip"  # self-extracting or prefixed archives
    if _looks_like_csv(head):
        return "csv"
    if not head:
        raise DatasetError("empty_archive", "The uploaded file is empty.")
    raise DatasetError(
        "unsupported_format",
        "This file is neither a zip nor a CSV. Upload a zip of class folders (angry/, happy/... optionally "
        "inside train/ and test/) or the FER2013 CSV (emotion,pixels,Usage).",
    )


def check_dataset(path, *, drop_unknown_classes: bool = False, limits: Limits = Limits()) -> dict:
    """Cheap checks before an import is queued: format, archive safety, columns, class names."""
    kind = sniff_format(path)
    if kind == "zip":
        return check_zip(path, drop_unknown_classes=drop_unknown_classes, limits=limits)
    if kind == "csv":
        with open(path, encoding="utf-8-sig", errors="replace", newline="") as text:
            _check_csv_header(text.readline())
        return {"format": "csv"}
    return {"format": kind}


def read_dataset(
    path,
    *,
    detector=None,
    drop_unknown_classes: bool = False,
    limits: Limits = Limits(),
    progress: ProgressFn | None = None,
) -> ReadResult:
    """Read a zip, a folder tree or a FER2013 CSV into 48x48 faces, labels and splits.

    Raises DatasetError when the input as a whole is refused; single corrupt or
    non-image members are skipped and listed in `skipped`, photos without a face in
    `no_face`. `progress` is called with a fraction in [0, 1], at most twice a second.
    """
    path = Path(path)
    kind = sniff_format(path)
    if kind == "directory":
        return _read_directory(
            path, detector=detector, drop_unknown_classes=drop_unknown_classes, limits=limits, progress=progress
        )
    if kind == "zip":
        return _read_zip(
            path, detector=detector, drop_unknown_classes=drop_unknown_classes, limits=limits, progress=progress
        )
    size = path.stat().st_size
    with open(path, "rb") as raw, io.TextIOWrapper(raw, encoding="utf-8-sig", newline="") as text:
        return _read_csv_stream(text, progress, "csv", size=size)

