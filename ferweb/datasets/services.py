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
from ferweb.deletion import DeletePreview, bytes_on_disk, count
from ferweb.jobs import JobLifecycle

from . import quality, versions
from .models import Dataset, DatasetItem
from fercore.readers import DatasetError, ReadResult, check_dataset, read_dataset

logger = logging.getLogger(__name__)

BULK_BATCH = 5000
LISTED_MEMBERS = 200
# Reading is most of the work; the last stretch is saving items.
READ_SHARE = 90.0


class DatasetNameTaken(DatasetError):
    """The owner already has a dataset of this name (code name_taken); the message says which."""

    def __init__(self, message: str):
        super().__init__("name_taken", message)


# Import phases (Dataset.phase), named on the pages: waiting for a worker, checking the archive
# (its safety, layout and class folders), reading the faces.
QUEUED, CHECKING_ARCHIVE, IMPORTING = "queued", "checking_archive", "importing"


def dataset_name(*, owner, name: str, default: str) -> str:
    """The name a new dataset of `owner` gets: one name names one dataset in the owner's lists.

    A name the person typed that one of their datasets already has is refused (DatasetNameTaken),
    so a second click or a second upload cannot make a twin that no list could tell apart. A
    name made up for them (the file's or the labeling set's, when they typed none) is made unique
    instead: "faces", then "faces (2)". Archived datasets are in no list, so their names are free.
    """
    taken = set(
        Dataset.objects.filter(owner=owner, archived_at__isnull=True).values_list("name", flat=True)
    )
    name = (name or "").strip()[:200]
    if name:
        if name in taken:
            twin = Dataset.objects.filter(owner=owner, archived_at__isnull=True, name=name).order_by("-pk").first()
            raise DatasetNameTaken(
                f"You already have a dataset named \"{name}\" (#{twin.pk}): choose another name.")
        return name
    base = (default or "").strip()[:190] or "dataset"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base} ({n})"
    return candidate


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
        name=dataset_name(owner=owner, name=name, default=Path(upload.name or "dataset").stem),
        source_name=Path(upload.name or "").name[:255],
        drop_unknown_classes=drop_unknown_classes,
        phase=QUEUED,
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
    source_name: str = "", source_format: str = "labeling", default_name: str = "Labeled faces",
) -> Dataset:
    """A ready dataset from faces that are already cropped and labeled (e.g. on the Labeling page).

    Stored by the same code as an import (packed array, items, quality findings, counts),
    so training and the dataset pages cannot tell the two apart. Raises ValueError on bad input,
    DatasetNameTaken when `name` is already one of the owner's (a blank one becomes `default_name`,
    made unique).
    """
    pixels, labels, splits = _checked_faces(pixels, labels, splits, source_names)
    dataset = Dataset.objects.create(
        owner=owner, name=dataset_name(owner=owner, name=name, default=default_name),
        source_name=source_name[:255], source_format=source_format[:16],
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


def _checked_faces(pixels, labels, splits, source_names) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pixels uint8 [N, 48, 48], labels int64, splits str) or ValueError saying what is wrong."""
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
    return pixels, labels, splits


@transaction.atomic
def dataset_add_faces(*, dataset: Dataset, pixels, labels, splits, source_names: list[str], user=None,
                      source: str = "labeling"):
    """Add faces that are already cropped and labeled to a ready dataset: a new version of it.

    1. the packed array grows (written beside it, then swapped in: a run reading the old file keeps it);
    2. one item per new face, after the last; 3. counts and mean faces follow; 4. version_record.
    Earlier versions name rows the array still holds, so they stay as they were. Raises ValueError.
    """
    pixels, labels, splits = _checked_faces(pixels, labels, splits, source_names)
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    if dataset.status != Dataset.Status.READY:
        raise ValueError(f"dataset {dataset.pk} is {dataset.status}; faces can be added to a ready dataset")
    versions.version_initial(dataset)
    packed = np.load(dataset.pixels_path)
    start = len(packed)
    staging = dataset.storage_dir / "pixels.npy.partial"
    with open(staging, "wb") as handle:
        np.save(handle, np.concatenate([packed, pixels]))
    DatasetItem.objects.bulk_create(
        DatasetItem(dataset_id=dataset.pk, index=start + i, label=int(labels[i]), split=str(splits[i]),
                    source_name=str(source_names[i])[-255:])
        for i in range(len(pixels))
    )
    os.replace(staging, dataset.pixels_path)
    dataset_recount(dataset=dataset)
    return versions.version_record(dataset, user=user, source=source)


# ---------------------------------------------------------------- import job


class DatasetImports(JobLifecycle):
    """Imports as background jobs (ferweb.jobs): `importing` from upload to end."""

    model = Dataset
    task = "ferweb.datasets.tasks.import_dataset"
    queued = running = Dataset.Status.IMPORTING
    failed = Dataset.Status.FAILED
    noun = "import"
    gave_up_advice = "Upload the file again; if it keeps failing, it may be too large for this server."
    retry_fields = {"progress": 0, "phase": QUEUED}

    def ended(self, dataset: Dataset) -> None:
        """The upload goes once the import ends, and its phase with it; a failed or cancelled import
        leaves no faces either."""
        upload, storage, failed = dataset.source.name, dataset.source.storage, dataset.status != Dataset.Status.READY
        Dataset.objects.filter(pk=dataset.pk).update(source="", phase="")

        def remove_files():
            if failed:
                shutil.rmtree(dataset.storage_dir, ignore_errors=True)
            if upload:
                storage.delete(upload)

        transaction.on_commit(remove_files)


dataset_imports = DatasetImports()


def _fail(dataset: Dataset, code: str, message: str) -> None:
    dataset_imports.finish(dataset, Dataset.Status.FAILED, error=code, message=message)


class _ImportGone(Exception):
    """The import was cancelled, deleted or taken over while it read: stop reading."""


def dataset_import(*, dataset_id: int, detector=None) -> Dataset | None:
    """Run a claimed import to its end and record the outcome on the dataset.

    1. phase checking_archive: open the archive through its guard and check its layout and classes;
    2. phase importing: read and convert every face (throttled progress and heartbeat; a job
       that is no longer this worker's stops reading at the next one);
    3. compute quality findings;
    4. write the packed array and all items in one transaction, so a failure leaves nothing.
    """
    dataset = Dataset.objects.filter(id=dataset_id).first()
    if dataset is None or dataset.status != Dataset.Status.IMPORTING:
        return dataset

    def reading(fraction: float) -> None:
        # The reader reports progress once the archive is checked and faces are being read.
        if not dataset_imports.heartbeat(dataset, phase=IMPORTING, progress=round(READ_SHARE * fraction, 1)):
            raise _ImportGone()

    try:
        if not dataset_imports.heartbeat(dataset, phase=CHECKING_ARCHIVE, progress=0):
            raise _ImportGone()
        if detector is None:
            from fercore.faces import FaceDetector

            detector = FaceDetector(min_face_size=settings.FERWEB_MIN_FACE_SIZE)
        result = read_dataset(
            dataset.source.path,
            detector=detector,
            drop_unknown_classes=dataset.drop_unknown_classes,
            limits=import_limits(),
            progress=reading,
        )
        if not len(result):
            raise DatasetError(
                "no_faces",
                f"Nothing could be imported: {len(result.skipped)} files were not readable images and "
                f"{len(result.no_face)} photos had no face. {_first_reasons(result)}",
            )
        _store(dataset, result)
    except _ImportGone:
        pass  # whoever took the job from this worker (a cancel, a delete) has recorded its end
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
            versions.version_initial(dataset)
    except BaseException:
        staging.unlink(missing_ok=True)
        if not dataset_imports.held(dataset).exists():  # cancelled or deleted meanwhile: leave no folder behind
            shutil.rmtree(dataset.storage_dir, ignore_errors=True)
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
    """Recompute counts and the findings that depend on labels after edits; the mean faces are
    recomputed when next asked for (selectors.dataset_mean_faces)."""
    counts = _counts(dataset.id)
    report = {**dataset.report, **counts.pop("report")}
    Dataset.objects.filter(id=dataset.id).update(report=report, **counts)
    dataset.mean_faces_path.unlink(missing_ok=True)
    dataset.refresh_from_db()
    return dataset


@transaction.atomic
def dataset_items_update(
    *, items, label: int | None = None, split: str | None = None, excluded: bool | None = None,
    user=None, source: str = "edit",
) -> int:
    """Relabel, move to a split, exclude or include items; counts follow, and each dataset touched gets
    a new version (versions.version_record: `source` and `user` say where the change came from).
    The versions runs trained on never change."""
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
    for dataset in datasets:  # a dataset from before versions keeps its state before the edit as version 1
        versions.version_initial(dataset)
    updated = items.update(**changes) if changes else 0
    for dataset in datasets:
        dataset_recount(dataset=dataset)
        versions.version_record(dataset, user=user, source=source)
    return updated


def _runs_trained_on(dataset: Dataset) -> int:
    # Through the reverse relation: the training app builds on this one, never the other way round.
    return dataset.training_runs.count()


def dataset_delete_preview(*, dataset: Dataset) -> DeletePreview:
    """What dataset_delete would do: delete the dataset with its files, or archive it for its runs."""
    runs = _runs_trained_on(dataset)
    if runs:
        were, them, those = ("was", "that run", "that run is") if runs == 1 else ("were", "them", "those runs are")
        return DeletePreview(
            what=f"Dataset #{dataset.pk} \"{dataset.name}\" will be archived, not deleted: {count(runs, 'run')} "
                 f"{were} trained on it, so it stays for {them}, hidden from your lists. Once {those} deleted, "
                 "it goes too.",
            frees_bytes=0, archived=True,
        )
    if dataset.status == Dataset.Status.READY:
        goes = f"its {count(dataset.num_items, 'face')} and their labels"
    elif dataset.status == Dataset.Status.IMPORTING:
        goes = "its upload; the import stops"
    else:
        goes = "what is left of its failed import"
    made_from = dataset.labeling_sets.count()
    stays = (" The labeling set it was made from stays." if made_from == 1 else
             f" The {made_from} labeling sets it was made from stay." if made_from else "")
    return DeletePreview(
        what=f"Dataset #{dataset.pk} \"{dataset.name}\" will be deleted with {goes}.{stays}",
        frees_bytes=bytes_on_disk(dataset.storage_dir, _source_path(dataset)),
    )


def _source_path(dataset: Dataset) -> Path | None:
    return Path(settings.MEDIA_ROOT) / dataset.source.name if dataset.source else None


@transaction.atomic
def dataset_delete(*, dataset: Dataset) -> bool:
    """Delete the dataset, its faces and its files; or archive it when runs were trained on it.

    1. runs name it (TrainingRun.dataset protects it): set archived_at, which hides it from every
       list while the runs' pages still link to it; its faces and files stay for their lineage
       (and its deletion comes with the deletion of the last of those runs);
    2. an import still running is cancelled first, so its worker stops at its next heartbeat;
    3. the row goes (its items with it) and its files go once the transaction commits.
    Returns True when it archived the dataset, False when it deleted it.
    """
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)
    if _runs_trained_on(dataset):
        if dataset.archived_at is None:
            Dataset.objects.filter(pk=dataset.pk).update(archived_at=timezone.now())
        return True
    if dataset.status == Dataset.Status.IMPORTING:
        dataset_imports.cancel(dataset)
        dataset.refresh_from_db()
    storage_dir, source = dataset.storage_dir, _source_path(dataset)
    dataset.delete()

    def remove_files():
        shutil.rmtree(storage_dir, ignore_errors=True)
        if source is not None:
            source.unlink(missing_ok=True)

    transaction.on_commit(remove_files)
    return False
