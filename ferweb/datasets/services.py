"""Writes on datasets: upload, import job, crash recovery, admin edits, lock, delete."""
from __future__ import annotations

import logging
import os
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from ferweb.classes import CLASSES

from . import quality
from .models import Dataset, DatasetItem
from .readers import DatasetError, Limits, ReadResult, check_dataset, read_dataset

logger = logging.getLogger(__name__)

BULK_BATCH = 5000
LISTED_MEMBERS = 200
# Reading is most of the work; the last stretch is saving items.
READ_SHARE = 90.0


class DatasetLockedError(Exception):
    """A run has trained on the dataset: it is read-only."""


def import_limits() -> Limits:
    return Limits(
        max_members=settings.FERWEB_MAX_ARCHIVE_MEMBERS,
        max_uncompressed_bytes=settings.FERWEB_MAX_ARCHIVE_UNCOMPRESSED_BYTES,
        max_compression_ratio=settings.FERWEB_MAX_COMPRESSION_RATIO,
        max_image_pixels=settings.FERWEB_MAX_IMAGE_PIXELS,
    )


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

    from .tasks import import_dataset

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
    transaction.on_commit(lambda: import_dataset.delay(dataset.pk))
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


def dataset_import_claim(*, dataset_id: int, worker: str) -> bool:
    """Atomically take a queued import; False when it is gone, finished or already running."""
    return (
        Dataset.objects.filter(id=dataset_id, status=Dataset.Status.IMPORTING, heartbeat_at__isnull=True).update(
            heartbeat_at=timezone.now(), import_worker=worker[:255], attempts=F("attempts") + 1, progress=0
        )
        == 1
    )


def _heartbeat(dataset_id: int, percent: float) -> None:
    Dataset.objects.filter(id=dataset_id, status=Dataset.Status.IMPORTING).update(
        progress=round(percent, 1), heartbeat_at=timezone.now()
    )


def _fail(dataset: Dataset, code: str, message: str) -> None:
    _remove_files(dataset, source=True)
    Dataset.objects.filter(id=dataset.id, status=Dataset.Status.IMPORTING).update(
        status=Dataset.Status.FAILED, error=code[:64], human_readable_error=message, finished_at=timezone.now(),
        heartbeat_at=None, source="",
    )


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
            from inference.faces import FaceDetector

            detector = FaceDetector(min_face_size=settings.FERWEB_MIN_FACE_SIZE)
        result = read_dataset(
            dataset.source.path,
            detector=detector,
            drop_unknown_classes=dataset.drop_unknown_classes,
            limits=import_limits(),
            progress=lambda fraction: _heartbeat(dataset_id, READ_SHARE * fraction),
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
            current = Dataset.objects.select_for_update().filter(id=dataset.id, status=Dataset.Status.IMPORTING)
            if not current.exists():
                raise DatasetError("gone", "The dataset was deleted during its import.")
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
            current.update(
                status=Dataset.Status.READY, progress=100, error="", human_readable_error="",
                report={**report, **counts.pop("report")}, finished_at=timezone.now(), heartbeat_at=None,
                source="", **counts,
            )
    except BaseException:
        staging.unlink(missing_ok=True)
        raise
    if dataset.source:
        dataset.source.delete(save=False)


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


# ---------------------------------------------------------------- crash recovery


def dataset_import_sweep(*, worker: str, stale_after: float | None = None, max_attempts: int | None = None) -> dict:
    """Recover imports whose worker died: re-queue them, or fail them after too many attempts.

    An import counts as dead when the worker now starting has the name of the worker that
    ran it (names are unique among live workers), or when its heartbeat is older than
    `stale_after` seconds.
    """
    stale_after = settings.FERWEB_IMPORT_STALE_SECONDS if stale_after is None else stale_after
    cutoff = timezone.now() - timedelta(seconds=stale_after)
    outcome = {"requeued": [], "failed": []}
    dead = Dataset.objects.filter(status=Dataset.Status.IMPORTING, heartbeat_at__isnull=False).filter(
        Q(import_worker=worker) | Q(heartbeat_at__lt=cutoff)
    )
    for dataset in dead:
        result = _recover(dataset, max_attempts)
        if result:
            outcome[result].append(dataset.id)
    if outcome["requeued"] or outcome["failed"]:
        logger.warning("recovered crashed dataset imports: %s", outcome)
    return outcome


def dataset_import_recover(*, dataset_id: int, worker: str, max_attempts: int | None = None) -> str | None:
    """A redelivered import whose claim is held by this worker's name: the process running it died
    (a pool child killed, e.g. out of memory, while the worker lived on). Recover it like the sweep does."""
    dataset = Dataset.objects.filter(
        id=dataset_id, status=Dataset.Status.IMPORTING, heartbeat_at__isnull=False, import_worker=worker
    ).first()
    return _recover(dataset, max_attempts) if dataset else None


def _recover(dataset: Dataset, max_attempts: int | None) -> str | None:
    """Re-queue a dead import, or fail it after its last attempt. Claimed atomically on the
    heartbeat that was seen, so two workers starting together never both recover it."""
    from .tasks import import_dataset

    max_attempts = settings.FERWEB_IMPORT_MAX_ATTEMPTS if max_attempts is None else max_attempts
    seen = Dataset.objects.filter(id=dataset.id, status=Dataset.Status.IMPORTING, heartbeat_at=dataset.heartbeat_at)
    if dataset.attempts >= max_attempts:
        message = (
            f"The import stopped {dataset.attempts} times because its worker ended (crashed, killed or out of "
            f"memory) and was given up. Upload the file again; if it keeps failing, it may be too large for "
            f"this server."
        )
        if seen.update(
            status=Dataset.Status.FAILED, error="worker_lost", human_readable_error=message,
            finished_at=timezone.now(), heartbeat_at=None,
        ):
            _remove_files(dataset, source=True)
            Dataset.objects.filter(id=dataset.id).update(source="")
            return "failed"
    elif seen.update(heartbeat_at=None, import_worker="", progress=0):
        DatasetItem.objects.filter(dataset_id=dataset.id).delete()
        import_dataset.delay(dataset.id)
        return "requeued"
    return None


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
