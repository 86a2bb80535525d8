"""A dataset's faces written back out in the two layouts FERWeb reads (fercore.readers):

- a zip of `<split>/<class>/<name>.png`, one folder per class inside each split's folder;
- a FER2013-style CSV, `emotion,pixels,Usage`, the split name in `Usage`.

PNG, not the public download's JPEG, so that reading the export back gives the very same pixels.
Split names are written as the dataset has them; the reader keeps them as given.
"""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from fercore.classes import CLASSES
from fercore.preprocess import FACE_SIZE
from fercore.readers import SPLIT_NAMES


def check_faces(pixels: np.ndarray, labels: np.ndarray, splits: np.ndarray) -> None:
    if pixels.ndim != 3 or pixels.shape[1:] != (FACE_SIZE, FACE_SIZE) or pixels.dtype != np.uint8:
        raise ValueError(f"expected uint8 faces [N, {FACE_SIZE}, {FACE_SIZE}], got {pixels.dtype} {pixels.shape}")
    if not len(pixels) == len(labels) == len(splits):
        raise ValueError("pixels, labels and splits must have one entry per face")
    unknown = sorted({str(s) for s in splits if str(s).lower() not in SPLIT_NAMES})
    if unknown:
        raise ValueError(f"split names {', '.join(unknown)} would not read back; "
                         f"use one of {', '.join(sorted(SPLIT_NAMES))}")


def member_name(index: int, source_name: str) -> str:
    """A unique file name that keeps the face's original name where it has one: 000123_Training_42.png."""
    stem = PurePosixPath(str(source_name).split("#")[0]).stem if source_name else ""
    stem = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in stem)[:80]
    return f"{index:06d}_{stem}.png" if stem else f"{index:06d}.png"


def write_zip(out, pixels: np.ndarray, labels: np.ndarray, splits: np.ndarray,
              source_names: list[str] | None = None) -> None:
    """Write the faces to `out` (a path or a binary file) as `<split>/<class>/<name>.png`."""
    check_faces(pixels, labels, splits)
    names = source_names if source_names is not None else [""] * len(pixels)
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:  # PNGs are compressed already
        for i, (face, label, split) in enumerate(zip(pixels, labels, splits)):
            ok, png = cv2.imencode(".png", np.ascontiguousarray(face))
            if not ok:
                raise ValueError(f"face {i} could not be encoded as PNG")
            archive.writestr(f"{split}/{CLASSES[int(label)]}/{member_name(i, names[i])}", png.tobytes())


def write_csv(out, pixels: np.ndarray, labels: np.ndarray, splits: np.ndarray) -> None:
    """Write the faces to `out` (a path or a text file) as FER2013's `emotion,pixels,Usage`."""
    check_faces(pixels, labels, splits)
    handle = open(out, "w", newline="", encoding="ascii") if isinstance(out, (str, Path)) else out
    try:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for face, label, split in zip(pixels, labels, splits):
            writer.writerow([int(label), " ".join(map(str, face.reshape(-1).tolist())), str(split)])
    finally:
        if handle is not out:
            handle.close()


def csv_bytes(pixels: np.ndarray, labels: np.ndarray, splits: np.ndarray) -> bytes:
    text = io.StringIO()
    write_csv(text, pixels, labels, splits)
    return text.getvalue().encode("ascii")
