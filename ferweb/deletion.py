"""Deleting what a user keeps: the preview every kind answers before a delete, and sizes on disk.

Each kind (dataset, labeling set, training run, inference job) has its `*_delete` service and a
`*_delete_preview` that says, in one sentence for a person, what the delete removes and what
stays, and how many bytes it frees (the real sizes of the files on disk, which is also what the
storage quota counts). A dataset that runs were trained on is archived rather than deleted: the
preview says so, and frees nothing.

This module imports no app: every app may build on it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rest_framework import serializers


@dataclass(frozen=True)
class DeletePreview:
    what: str  # what goes and what stays, for a person
    frees_bytes: int
    archived: bool = False  # the delete archives instead (a dataset runs were trained on)


class DeletePreviewOutput(serializers.Serializer):
    """What a DELETE on the same record would do."""

    what = serializers.CharField(help_text="One sentence: what goes and what stays.")
    frees_bytes = serializers.IntegerField(help_text="Bytes on disk the delete frees (0 when it archives).")
    archived = serializers.BooleanField(
        help_text="True when the record is archived instead of deleted: hidden from lists, kept for the runs "
                  "trained on it.")


def bytes_on_disk(*paths: Path | str | None) -> int:
    """Bytes of these files, and of every file under these folders; missing ones count 0."""
    total = 0
    for path in {Path(p) for p in paths if p}:
        try:
            if path.is_file():
                total += path.stat().st_size
                continue
        except OSError:
            continue
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except OSError:
                    pass  # removed while we looked
    return total


def count(n: int, noun: str, plural: str = "") -> str:
    """'1 face', '28,709 faces'."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"
