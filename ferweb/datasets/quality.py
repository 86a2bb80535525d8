"""Data-quality findings over a packed face array (NumPy only).

What the papers check before training: blank or near-constant images and exact
duplicates, which inflate test scores when a face sits in both train and test.
"""
import hashlib

import numpy as np

from fercore.classes import CLASSES

# A face whose pixels barely vary (standard deviation in grey levels) carries no expression.
BLANK_STD = 4.0
EXAMPLE_ITEMS = 48
EXAMPLE_GROUPS = 16
CHUNK = 4096

BLANK = "blank"
DUPLICATE = "duplicate"
CROSS_SPLIT_DUPLICATE = "cross_split_duplicate"
FLAGS = (BLANK, DUPLICATE, CROSS_SPLIT_DUPLICATE)


def blank_faces(pixels: np.ndarray) -> np.ndarray:
    """Indices of near-constant faces."""
    flat = pixels.reshape(len(pixels), -1)
    # In chunks: a float copy of all of FER2013 at once would take half a gigabyte.
    std = np.concatenate(
        [flat[start:start + CHUNK].std(axis=1, dtype=np.float32) for start in range(0, len(flat), CHUNK)]
        or [np.empty(0, dtype=np.float32)]
    )
    return np.flatnonzero(std < BLANK_STD)


def duplicate_groups(pixels: np.ndarray) -> list[list[int]]:
    """Groups (two or more indices) of faces with identical pixels."""
    seen: dict[bytes, list[int]] = {}
    for i in range(len(pixels)):
        seen.setdefault(hashlib.blake2b(pixels[i].tobytes(), digest_size=16).digest(), []).append(i)
    return [group for group in seen.values() if len(group) > 1]


def findings(pixels: np.ndarray, splits: np.ndarray) -> tuple[list[set[str]], dict]:
    """(flags per face, summary for the report) with counts and example indices."""
    flags: list[set[str]] = [set() for _ in range(len(pixels))]
    blank = blank_faces(pixels)
    for i in blank:
        flags[i].add(BLANK)
    within, across = [], []
    for group in duplicate_groups(pixels):
        cross = len({str(splits[i]) for i in group}) > 1
        (across if cross else within).append(group)
        for i in group:
            flags[i].add(CROSS_SPLIT_DUPLICATE if cross else DUPLICATE)

    def summary(groups):
        return {
            "groups": len(groups),
            "items": sum(len(g) for g in groups),
            "extra_copies": sum(len(g) - 1 for g in groups),
            "examples": [g[:6] for g in groups[:EXAMPLE_GROUPS]],
        }

    return flags, {
        "blank": {"count": int(len(blank)), "items": [int(i) for i in blank[:EXAMPLE_ITEMS]], "threshold_std": BLANK_STD},
        "duplicates_within_split": summary(within),
        "duplicates_across_splits": summary(across),
    }


def mean_faces(pixels: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """float32 [7, 48, 48]: the average face of each class (zeros for an empty class)."""
    means = np.zeros((len(CLASSES), *pixels.shape[1:]), dtype=np.float32)
    for index in range(len(CLASSES)):
        rows = np.flatnonzero(labels == index)
        if len(rows):
            total = np.zeros(pixels.shape[1:], dtype=np.float64)
            for start in range(0, len(rows), CHUNK):
                total += pixels[rows[start:start + CHUNK]].sum(axis=0, dtype=np.float64)
            means[index] = total / len(rows)
    return means
