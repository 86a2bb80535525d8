"""Writes on datasets: upload, import job (its lifecycle is ferweb.jobs), admin edits, lock, delete."""
from __future__ import annotations

import logging
import os
import shutil
import socket
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from fercore.archive import Limits
from fercore.classes import CLASSES
from ferweb.jobs import JobLifecycle

from . import quality
from .models import Dataset, DatasetItem
from fercore.readers import DatasetError, ReadResult, check_dataset, read_dataset

logger = logging.getLogger(__name__)

BULK_BATCH = 5000
LISTED_MEMBERS = 200
# Reading is most of the work; the last stretch is saving items.
READ_SHARE = 90.0


class DatasetLockedError(Exception):
    """A run has trained on the dataset: it is read-only."""


def import_limits() -> Limits:
    return Limits.from_settings(settings)


def _remove_files(dataset: Dataset, *, source: bool) -> None:
    shutil.rmtree(dataset.storage_dir, ignore_errors=True)
    if source and dataset.source:
        dataset.source.delete(save=False)


# ---------------------------------------------------------------- upload


@transaction.atomic
def dataset_create(*, owner, name: str, upload: UploadedFile, drop_unknown_classes: bool = False) -> Dataset:
    """Store the upload, run the cheap checks, and queue the import once the row is committed.

    Raises DatasetError (nothing is kept) when the file is refused outright.
    """
    from ferweb.quotas import check_storage

    check_storage(owner, upload.size or 0)

    dataset = Dataset(
        owner=owner,
        name=(name or "").strip() or Path(upload.name or "dataset").stem,
        source_name=Path(upload.name or "").name[:255],
        drop_unknown_classes=drop_unknown_classes,
    )
    dataset.source.save(Path(upload.name or "upload").name, upload, save=False)
    try:
        checked = check_dataset(dataset.source.path, drop_unknown_classes=drop_unknown_classes, limits=import_limits())
    except DatasetError:
        dataset.source.delete(save=False)
        raise
    dataset.source_format = checked["format"]
    dataset.save()
    dataset_imports.enqueue(dataset.pk)
    return dataset


def dataset_create_from_faces(
    *, owner, name: str, pixels: np.ndarray, labels, splits, source_names: list[str],
    source_name: str = "", source_format: str = "labeling",
) -> Dataset:
    """A ready dataset from faces that are already cropped and labeled (e.g. on the Labeling page).

    Stored by the same code as an import (packed array, items, quality findings, counts),
    so training and the dataset pages cannot tell the two apart. Raises ValueError on bad input.
    """
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    splits = np.asarray(splits, dtype=str)
    if pixels.ndim != 3 or pixels.shape[1:] != (48, 48):
        raise ValueError(f"pixels must be uint8 [N, 48, 48], got shape {list(pixels.shape)}")
    if not len(pixels):
        raise ValueError("a dataset needs at least one face")
    if not (len(labels) == len(splits) == len(source_names) == len(pixels)):
        raise ValueError("pixels, labels, splits and source_names must have the same length")
    if labels.min() < 0 or labels.max() >= len(CLASSES):
        raise ValueError(f"labels must be 0-{len(CLASSES) - 1} ({', '.join(CLASSES)})")
    if any(not s.strip() or len(s) > 32 for s in splits):
        raise ValueError("a split name is 1-32 characters, e.g. train, val or test")
    dataset = Dataset.objects.create(
        owner=owner, name=(name or "").strip()[:200] or "Labeled faces", source_name=source_name[:255],
        source_format=source_format[:16],
    )
    # Stored here and now, as an import job that this process holds.
    dataset_imports.claim(dataset.pk, worker=f"in-process-{os.getpid()}@{socket.gethostname()}")
    dataset.refresh_from_db()
    result = ReadResult(
        pixels=pixels, labels=labels, splits=splits, source_names=[str(n) for n in source_names],
        source_format=source_format,
    )
    try:
        with transaction.atomic():
            _store(dataset, result)
    except BaseException:
        _remove_files(dataset, source=False)
        dataset.delete()
        raise
    dataset.refresh_from_db()
    return dataset


# ---------------------------------------------------------------- import job


class DatasetImports(JobLifecycle):
    """Imports as background jobs (ferweb.jobs): `importing` from upload to end."""

    model = Dataset
    task = "ferweb.datasets.tasks.import_dataset"
    queued = running = Dataset.Status.IMPORTING
    failed = Dataset.Status.FAILED
    noun = "import"
    gave_up_advice = "Upload the file again; if it keeps failing, it may be too large for this server."
    retry_fields = {"progress": 0}

    def ended(self, dataset: Dataset) -> None:
        """The upload goes once the import ends; a failed or cancelled import leaves no faces either."""
        upload, storage, failed = dataset.source.name, dataset.source.storage, dataset.status != Dataset.Status.READY
        Dataset.objects.filter(pk=dataset.pk).update(source="")

        def remove_files():
            if failed:
                shutil.rmtree(dataset.storage_dir, ignore_errors=True)
            if upload:
                storage.delete(upload)

        transaction.on_commit(remove_files)


dataset_imports = DatasetImports()


def _fail(dataset: Dataset, code: str, message: str) -> None:
    dataset_imports.finish(dataset, Dataset.Status.FAILED, error=code, message=message)


def dataset_import(*, dataset_id: int, detector=None) -> Dataset | None:
    """Run a claimed import to its end and record the outcome on the dataset.

    1. read and convert every face (throttled progress and heartbeat);
    2. compute quality findings;
    3. write the packed array and all items in one transaction, so a failure leaves nothing.
    """
    dataset = Dataset.objects.filter(id=dataset_id).first()
    if dataset is None or dataset.status != Dataset.Status.IMPORTING:
        return dataset
    try:
        if detector is None:
            from fercore.faces import FaceDetector

            detector = FaceDetector(min_face_size=settings.FERWEB_MIN_FACE_SIZE)
        result = read_dataset(
            dataset.source.path,
            detector=detector,
            drop_unknown_classes=dataset.drop_unknown_classes,
            limits=import_limits(),
            progress=lambda fraction: dataset_imports.heartbeat(dataset, progress=round(READ_SHARE * fraction, 1)),
        )
        if not len(result):
            raise DatasetError(
                "no_faces",
                f"Nothing could be imported: {len(result.skipped)} files were not readable images and "
                f"{len(result.no_face)} photos had no face. {_first_reasons(result)}",
            )
        _store(dataset, result)
    except DatasetError as error:
        _fail(dataset, error.code, error.message)
    except FileNotFoundError:
        _fail(dataset, "source_missing", "The uploaded file is no longer on the server; upload it again.")
    except Exception as error:  # recorded for the user, logged for the operator
        logger.exception("import of dataset %s failed", dataset_id)
        _fail(dataset, "internal_error", f"The import failed unexpectedly ({type(error).__name__}: {error}).")
    return Dataset.objects.filter(id=dataset_id).first()


def _first_reasons(result: ReadResult) -> str:
    examples = [f"{m['name']}: {m['reason']}" for m in (result.skipped + result.no_face)[:3]]
    return ("For example " + "; ".join(examples) + ".") if examples else ""


def _members(entries: list[dict]) -> dict:
    return {"count": len(entries), "members": entries[:LISTED_MEMBERS]}


def _store(dataset: Dataset, result: ReadResult) -> None:
    flags, findings = quality.findings(result.pixels, result.splits)
    report = {
        "source_format": result.source_format,
        "quality": findings,
        "skipped": _members(result.skipped),
        "no_face": _members(result.no_face),
        "dropped_classes": result.dropped,
        "faces_detected": result.detected,
    }
    dataset.storage_dir.mkdir(parents=True, exist_ok=True)
    staging = dataset.storage_dir / "pixels.npy.partial"
    with open(staging, "wb") as handle:
        np.save(handle, result.pixels)
    try:
        with transaction.atomic():
            if not dataset_imports.held(dataset).select_for_update().exists():
                raise DatasetError("gone", "The import was cancelled, deleted or taken over meanwhile.")
            DatasetItem.objects.filter(dataset_id=dataset.id).delete()  # a retry after a crash starts clean
            items = (
                DatasetItem(
                    dataset_id=dataset.id, index=i, label=int(result.labels[i]), split=str(result.splits[i])[:32],
                    source_name=result.source_names[i][-255:], flags=",".join(sorted(flags[i])),
                )
                for i in range(len(result))
            )
            batch = []
            for item in items:
                batch.append(item)
                if len(batch) == BULK_BATCH:
                    DatasetItem.objects.bulk_create(batch)
                    batch = []
            if batch:
                DatasetItem.objects.bulk_create(batch)
            os.replace(staging, dataset.pixels_path)
            np.save(dataset.mean_faces_path, quality.mean_faces(result.pixels, result.labels))
            counts = _counts(dataset.id)
            report = {**report, **counts.pop("report")}
            if not dataset_imports.finish(dataset, Dataset.Status.READY, progress=100, report=report, **counts):
                raise DatasetError("gone", "The import was cancelled, deleted or taken over meanwhile.")
    except BaseException:
        staging.unlink(missing_ok=True)
        raise


def _counts(dataset_id: int) -> dict:
    """num_items, class_counts and split_counts over the items that are not excluded."""
    rows = (
        DatasetItem.objects.filter(dataset_id=dataset_id, excluded=False)
        .values("split", "label")
        .annotate(n=Count("id"))
    )
    class_counts = {name: 0 for name in CLASSES}
    split_counts: dict[str, int] = {}
    by_split: dict[str, dict[str, int]] = {}
    for row in rows:
        name = CLASSES[row["label"]]
        class_counts[name] += row["n"]
        split_counts[row["split"]] = split_counts.get(row["split"], 0) + row["n"]
        by_split.setdefault(row["split"], {c: 0 for c in CLASSES})[name] += row["n"]
    excluded = DatasetItem.objects.filter(dataset_id=dataset_id, excluded=True).count()
    return {
        "num_items": sum(class_counts.values()),
        "class_counts": class_counts,
        "split_counts": dict(sorted(split_counts.items())),
        "report": {"class_counts_by_split": dict(sorted(by_split.items())), "excluded": excluded},
    }


# ---------------------------------------------------------------- edits


def dataset_lock(*, dataset: Dataset) -> Dataset:
    """Make the dataset read-only (a run trains on it); idempotent."""
    Dataset.objects.filter(id=dataset.id, locked_at__isnull=True).update(locked_at=timezone.now())
    dataset.refresh_from_db(fields=["locked_at"])
    return dataset


@transaction.atomic
def dataset_recount(*, dataset: Dataset) -> Dataset:
    """Recompute counts, findings that depend on labels, and the mean faces after edits."""
    counts = _counts(dataset.id)
    report = {**dataset.report, **counts.pop("report")}
    Dataset.objects.filter(id=dataset.id).update(report=report, **counts)
    if dataset.pixels_path.exists():
        from .selectors import dataset_arrays

        pixels, labels, _, _ = dataset_arrays(dataset)
        np.save(dataset.mean_faces_path, quality.mean_faces(pixels, labels))
    dataset.refresh_from_db()
    return dataset


@transaction.atomic
def dataset_items_update(
    *, items, label: int | None = None, split: str | None = None, excluded: bool | None = None
) -> int:
    """Relabel, move to a split, exclude or include items; counts follow. Refused on locked datasets."""
    changes = {}
    if label is not None:
        if not 0 <= label < len(CLASSES):
            raise ValueError(f"label must be 0-{len(CLASSES) - 1} ({', '.join(CLASSES)})")
        changes["label"] = label
    if split is not None:
        if not split.strip() or len(split) > 32:
            raise ValueError("a split name is 1-32 characters, e.g. train, val or test")
        changes["split"] = split.strip()
    if excluded is not None:
        changes["excluded"] = excluded
    dataset_ids = set(items.values_list("dataset_id", flat=True).distinct())
    datasets = list(Dataset.objects.select_for_update().filter(id__in=dataset_ids))
    locked = [d for d in datasets if d.is_locked]
    if locked:
        names = ", ".join(str(d) for d in locked)
        raise DatasetLockedError(f"Read-only: a training run has used {names}; its items cannot change.")
    updated = items.update(**changes) if changes else 0
    for dataset in datasets:
        dataset_recount(dataset=dataset)
    return updated


@transaction.atomic
def dataset_delete(*, dataset: Dataset) -> None:
    if dataset.is_locked:
        raise DatasetLockedError(f"Read-only: a training run has used {dataset}; it cannot be deleted.")
    storage_dir, source = dataset.storage_dir, dataset.source.name
    dataset.delete()

    def remove_files():
        shutil.rmtree(storage_dir, ignore_errors=True)
        if source:
            dataset.source.storage.delete(source)

    transaction.on_commit(remove_files)
