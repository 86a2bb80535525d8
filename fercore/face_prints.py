"""Fingerprints of faces: which of a dataset's faces a model was trained on, without keeping the faces.

A print is the first 8 bytes of the BLAKE2b digest of a 48x48 uint8 face, as an unsigned 64-bit
integer. The shipped model keeps the prints of its training faces beside its card
(inference/models/default.faces.npy), so the label-error finder can say when its scores are
in-sample, for FER2013's training split or any part of it.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np


def face_prints(pixels: np.ndarray) -> np.ndarray:
    """One print per face (uint64 [N]), in the faces' order."""
    faces = np.ascontiguousarray(pixels, dtype=np.uint8)
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(face.tobytes(), digest_size=8).digest(), "little") for face in faces),
        dtype=np.uint64, count=len(faces),
    )


def save_prints(pixels: np.ndarray, path: Path) -> int:
    """Write the sorted, distinct prints of `pixels` to `path` (.npy); returns how many."""
    prints = np.unique(face_prints(pixels))
    np.save(path, prints)
    return len(prints)


def count_seen(pixels: np.ndarray, prints: np.ndarray) -> int:
    """How many of `pixels` have a print among `prints` (sorted, as save_prints writes them)."""
    mine = face_prints(pixels)
    if not len(mine) or not len(prints):
        return 0
    at = np.clip(np.searchsorted(prints, mine), 0, len(prints) - 1)
    return int((prints[at] == mine).sum())
