"""Reads on datasets: who sees what, and the packed arrays training loads."""
from __future__ import annotations

import os
import threading

import numpy as np
from django.db.models import QuerySet

from ferweb.access import get_visible_or_404, visible_to
from fercore.classes import CLASSES

from . import quality
from .models import Dataset, DatasetItem


def datasets_for(user) -> QuerySet[Dataset]:
    """The datasets a user's lists show: their own (staff: all), archived ones left out."""
    return visible_to(user, Dataset.objects.select_related("owner")).filter(archived_at__isnull=True)


def dataset_get_for(user, pk) -> Dataset:
    """The dataset, archived or not, or 404 when it does not exist or belongs to someone else (an
    archived dataset's page still opens from the runs trained on it)."""
    return get_visible_or_404(user, Dataset.objects.select_related("owner"), pk, f"No dataset {pk}.")


def dataset_arrays(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pixels uint8 [N, 48, 48], labels int64 [N], splits str [N], item ids int64 [N]).

    Labels and splits come from the items, so admin relabels and split moves apply;
    excluded items are left out. Raises FileNotFoundError when the packed array is missing.
    """
    pixels = np.load(dataset.pixels_path, mmap_mode="r")
    index, labels, splits, ids = dataset_rows(dataset)
    if len(index) == len(pixels) and (len(index) == 0 or index[-1] == len(index) - 1):
        faces = np.array(pixels)  # nothing excluded: one sequential read
    else:
        faces = np.ascontiguousarray(pixels[index])
    return faces, labels, splits, ids


def dataset_rows(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(row in the packed array int64 [N], labels int64 [N], splits str [N], item ids int64 [N]) of the
    faces that are not excluded, in order: dataset_arrays without reading the pixels."""
    rows = DatasetItem.objects.filter(dataset_id=dataset.id, excluded=False).order_by("index")
    index, labels, splits, ids = [], [], [], []
    for i, label, split, item_id in rows.values_list("index", "label", "split", "id").iterator(chunk_size=10_000):
        index.append(i)
        labels.append(label)
        splits.append(split)
        ids.append(item_id)
    return (
        np.asarray(index, dtype=np.int64),
        np.asarray(labels, dtype=np.int64),
        np.asarray(splits, dtype=str),
        np.asarray(ids, dtype=np.int64),
    )


def dataset_face(dataset: Dataset, index: int) -> np.ndarray:
    """One stored face (uint8 48x48) by its row; IndexError when there is none."""
    pixels = np.load(dataset.pixels_path, mmap_mode="r")
    if not 0 <= index < len(pixels):
        raise IndexError(index)
    return np.array(pixels[index])


def dataset_mean_face(dataset: Dataset, class_name: str) -> np.ndarray:
    means = dataset_mean_faces(dataset)
    return np.clip(np.rint(means[CLASSES.index(class_name)]), 0, 255).astype(np.uint8)


def dataset_mean_faces(dataset: Dataset) -> np.ndarray:
    """The mean face of each class (float [7, 48, 48]). Edits drop the stored ones (a pass over every
    face is too slow to make on each relabel), so the first request after an edit computes them again."""
    path = dataset.mean_faces_path
    if not path.exists():
        pixels, labels, _, _ = dataset_arrays(dataset)
        staging = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.npy")
        np.save(staging, quality.mean_faces(pixels, labels))
        os.replace(staging, path)
    return np.load(path)


def dataset_samples(dataset: Dataset, per_class: int = 12) -> dict[str, list[int]]:
    """Item indices of a few faces of each class (not excluded), evenly spread over the dataset."""
    samples = {}
    for label, name in enumerate(CLASSES):
        rows = DatasetItem.objects.filter(dataset_id=dataset.id, label=label, excluded=False)
        total = rows.count()
        if not total:
            samples[name] = []
            continue
        step = max(1, total // per_class)
        picked = list(rows.order_by("index").values_list("index", flat=True)[: step * per_class : step])
        samples[name] = picked[:per_class]
    return samples


EXPORT_FORMATS = {"zip": ("application/zip", "zip"), "csv": ("text/csv", "csv")}


def dataset_export(dataset: Dataset, export_format: str, out, number: int | None = None) -> str:
    """Write version `number` of the dataset (the newest when None, sealed by the export) to the binary
    file `out`, excluded faces left out, as a zip of split/class folders or a FER2013 CSV
    (fercore.exports); the file name to offer. Importing either gives back the same faces, labels and
    splits. Raises DatasetVersion.DoesNotExist for a version the dataset does not have."""
    from fercore import exports

    from .versions import version_get, version_rows, version_seal

    version = version_seal(dataset) if number is None else version_get(dataset, number)
    rows, labels, splits, ids = version_rows(version)
    pixels = np.ascontiguousarray(np.load(dataset.pixels_path, mmap_mode="r")[rows])
    if export_format == "zip":
        names = dict(DatasetItem.objects.filter(pk__in=ids.tolist()).values_list("pk", "source_name"))
        exports.write_zip(out, pixels, labels, splits, [names.get(int(i), "") for i in ids])
    else:
        out.write(exports.csv_bytes(pixels, labels, splits))
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in dataset.name)[:80] or "dataset"
    return f"{safe}-{dataset.pk}-v{version.number}.{EXPORT_FORMATS[export_format][1]}"
