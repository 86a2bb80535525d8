"""Writes of labeling: upload photos, find and classify their faces, confirm labels, make a dataset."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.db import transaction
from django.db.models import F, Sum
from django.db.models.functions import Length
from django.utils import timezone

from fercore.archive import ArchiveError, GuardedZip, Limits, UnreadableMember, is_system_file
from fercore.classes import CLASSES, CLASS_INDEX
from fercore.images import ALLOWED_NAMES, ImageDecodeError, decode_image
from fercore.preprocess import crop_face
from ferweb.deletion import DeletePreview, bytes_on_disk, count
from ferweb.jobs import JobLifecycle

from .models import LabelingFace, LabelingPhoto, LabelingSet, entropy_of

logger = logging.getLogger(__name__)

PHOTO_FORMATS = ALLOWED_NAMES
ZIP_SUFFIX = ".zip"
LISTED_PHOTOS = 200
SUMMARY_EVERY_S = 0.5  # seconds between progress writes
MAX_TEST_SHARE = 0.9


class LabelingError(Exception):
    """A request that cannot be carried out; `code` is machine-readable, the message is for a person,
    `field` names the input it is about (if one)."""

    def __init__(self, code: str, message: str, *, field: str = ""):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


def _label_index(label: str) -> int:
    if label not in CLASS_INDEX:
        raise LabelingError("bad_label", f"Unknown label {label!r}: use one of {', '.join(CLASSES)}.")
    return CLASS_INDEX[label]


# ---------------------------------------------------------------- upload


@transaction.atomic
def labeling_set_create(*, owner, name: str, uploads: list) -> LabelingSet:
    """A new set holding the uploaded photos (or zips of photos); their processing is queued."""
    _check_uploads(uploads)
    labeling_set = LabelingSet.objects.create(
        owner=owner, name=(name or "").strip()[:200] or Path(uploads[0].name or "photos").stem[:200] or "Photos"
    )
    labeling_photos_add(labeling_set=labeling_set, uploads=uploads)
    labeling_set.refresh_from_db()
    return labeling_set


def _check_uploads(uploads: list) -> None:
    if not uploads:
        raise LabelingError(
            "no_files", f"Choose at least one photo ({PHOTO_FORMATS}) or a zip of photos to upload."
        )


@transaction.atomic
def labeling_photos_add(*, labeling_set: LabelingSet, uploads: list) -> int:
    """Store the files and queue processing once committed; returns how many files were added.

    The set row is locked, so a job finishing at the same moment either sees the new photos
    or has already let go of the set (then the queued task claims it again).
    """
    from ferweb.quotas import check_storage

    _check_uploads(uploads)
    check_storage(labeling_set.owner, sum(upload.size or 0 for upload in uploads))
    current = LabelingSet.objects.select_for_update().get(pk=labeling_set.pk)
    for upload in uploads:
        name = Path(upload.name or "photo").name[:255] or "photo"
        photo = LabelingPhoto(labeling_set=current, name=name)
        photo.file.save(name, upload, save=False)
        photo.save()
    summary = _summary(current.pk)
    # New photos are new work: a set that no worker holds starts a job with a fresh count of
    # attempts. Always queue: a worker that holds the set takes the new photos too (the extra
    # task then steps aside), and one that let go of it meanwhile leaves it to that task.
    fresh = {} if current.heartbeat_at else {"attempts": 0, "finished_at": None}
    LabelingSet.objects.filter(pk=current.pk).update(
        status=LabelingSet.Status.PROCESSING, error="", human_readable_error="", **fresh, **summary
    )
    labeling_jobs.enqueue(current.pk)
    return len(uploads)


# ---------------------------------------------------------------- processing job


class LabelingJobs(JobLifecycle):
    """Processing a set's photos as a background job (ferweb.jobs): `processing` while any photo waits."""

    model = LabelingSet
    task = "ferweb.labeling.tasks.process_labeling_set"
    queued = running = LabelingSet.Status.PROCESSING
    failed = LabelingSet.Status.FAILED
    noun = "processing"
    gave_up_advice = "Uploading more photos retries the ones left."


labeling_jobs = LabelingJobs()


class Proposer:
    """Detector and the owner's active model, fixed for one run of the job."""

    def __init__(self, owner):
        from inference.engine import ModelUnavailable, get_engine
        from inference.selectors import active_model_for

        self.engine = get_engine()
        self.detector = self.engine.detector
        self.model, self.version, self.error = None, "", ""
        active = active_model_for(owner)
        try:
            self.model = self.engine.models.get(active.path)
        except ModelUnavailable as error:
            self.error = str(error)  # faces are still stored, without a proposal
        else:
            self.version = active.version if active.model_version_id else self.model.version

    def probabilities(self, crops: np.ndarray) -> np.ndarray | None:
        if self.model is None or not len(crops):
            return None
        return self.engine.classify(self.model, crops)


def labeling_process(*, set_id: int, proposer: Proposer | None = None) -> LabelingSet | None:
    """Process every pending photo of a claimed set, then mark it ready.

    1. take the oldest pending photo: expand a zip into photos, or decode (EXIF upright),
       detect every face, crop, classify, and store the faces with the photo's outcome in
       one transaction (a retry after a crash starts that photo over);
    2. heartbeat and progress after each photo;
    3. with the set locked, finish only when no photo is pending (uploads may add more).
    Unreadable files and photos without faces are listed in the report, never fatal.
    """
    labeling_set = LabelingSet.objects.select_related("owner").filter(id=set_id).first()
    if labeling_set is None or labeling_set.status != LabelingSet.Status.PROCESSING:
        return labeling_set
    try:
        proposer = proposer or Proposer(labeling_set.owner)
        model_report = {"version": proposer.version, "error": proposer.error}
        last_summary = 0.0
        while True:
            photo = LabelingPhoto.objects.filter(labeling_set_id=set_id, status=LabelingPhoto.Status.PENDING).first()
            if photo is None:
                if _finish(labeling_set, model_report):
                    break
                continue
            if photo.name.lower().endswith(ZIP_SUFFIX):
                _expand_zip(photo)
            else:
                _process_photo(photo, proposer)
            now = time.monotonic()
            fields = {}
            if now - last_summary >= SUMMARY_EVERY_S:
                last_summary = now
                fields = _summary(set_id, model_report)
            if not labeling_jobs.heartbeat(labeling_set, **fields):
                break  # cancelled, deleted or taken over meanwhile
    except Exception as error:  # recorded for the user, logged for the operator
        logger.exception("processing labeling set %s failed", set_id)
        labeling_jobs.finish(
            labeling_set, LabelingSet.Status.FAILED, error="internal_error",
            message=f"Processing stopped unexpectedly ({type(error).__name__}: {error}). "
                    "Uploading more photos retries the ones left.",
        )
    return LabelingSet.objects.filter(id=set_id).first()


def _finish(labeling_set: LabelingSet, model_report: dict) -> bool:
    """Mark the set ready unless photos arrived meanwhile (then keep going); True when the job is over."""
    with transaction.atomic():
        current = LabelingSet.objects.select_for_update().filter(id=labeling_set.pk).first()
        if current is None:
            return True
        if LabelingPhoto.objects.filter(labeling_set_id=labeling_set.pk, status=LabelingPhoto.Status.PENDING).exists():
            return False
        labeling_jobs.finish(labeling_set, LabelingSet.Status.READY, **_summary(labeling_set.pk, model_report))
    return True


def _summary(set_id: int, model_report: dict | None = None) -> dict:
    """Counters, progress and the report of photos that gave no face, from the photo rows."""
    photos = LabelingPhoto.objects.filter(labeling_set_id=set_id).exclude(status=LabelingPhoto.Status.EXPANDED)
    total = photos.count()
    done = photos.exclude(status=LabelingPhoto.Status.PENDING).count()
    report = {}
    for status in (LabelingPhoto.Status.UNREADABLE, LabelingPhoto.Status.NO_FACE):
        rows = photos.filter(status=status)
        report[status.value] = {
            "count": rows.count(),
            "members": [{"name": n, "reason": r} for n, r in rows.values_list("name", "reason")[:LISTED_PHOTOS]],
        }
    report["faces"] = LabelingFace.objects.filter(labeling_set_id=set_id).count()
    if model_report is not None:
        report["model"] = model_report
    else:
        report["model"] = LabelingSet.objects.filter(id=set_id).values_list("report", flat=True).first().get("model", {})
    return {
        "photos_total": total, "photos_done": done, "report": report,
        "progress": round(100.0 * done / total, 1) if total else 100.0,
    }


def _mark(photo: LabelingPhoto, status: str, reason: str = "") -> None:
    LabelingPhoto.objects.filter(pk=photo.pk).update(status=status, reason=reason[:255], file="")
    _remove_file_on_commit(photo)


def _remove_file_on_commit(photo: LabelingPhoto) -> None:
    if photo.file:
        name, storage = photo.file.name, photo.file.storage
        transaction.on_commit(lambda: storage.delete(name))


def _process_photo(photo: LabelingPhoto, proposer: Proposer) -> None:
    try:
        if photo.file.size > settings.FERWEB_MAX_IMAGE_BYTES:
            return _mark(photo, LabelingPhoto.Status.UNREADABLE, _too_large_message())
        with photo.file.open("rb") as handle:
            data = handle.read()
    except (FileNotFoundError, ValueError):
        return _mark(photo, LabelingPhoto.Status.UNREADABLE, "The uploaded file is no longer on the server.")
    try:
        gray = decode_image(data, max_pixels=settings.FERWEB_MAX_IMAGE_PIXELS)
    except ImageDecodeError as error:
        return _mark(photo, LabelingPhoto.Status.UNREADABLE, error.message)
    found = proposer.detector.detect(gray, thorough=True)
    usable = [face for face in found if not face.too_small]
    if not usable:
        reason = (
            f"faces too small (under {proposer.detector.min_face_size} px)" if found else "no face found"
        )
        return _mark(photo, LabelingPhoto.Status.NO_FACE, reason)
    crops = np.stack([crop_face(gray, face.box) for face in usable])
    probs = proposer.probabilities(crops)
    faces = []
    for k, (face, crop) in enumerate(zip(usable, crops)):
        ok, png = cv2.imencode(".png", crop)
        row = LabelingFace(
            labeling_set_id=photo.labeling_set_id, photo=photo, crop_png=png.tobytes(),
            source_name=(f"{photo.name}#{k + 1}" if len(usable) > 1 else photo.name)[-255:],
            box=[int(v) for v in face.box], model_version=proposer.version,
        )
        if probs is not None:
            classes = proposer.model.classes
            p = probs[k]
            best = int(np.argmax(p))
            row.probabilities = {name: round(float(v), 4) for name, v in zip(classes, p)}
            row.entropy = entropy_of(row.probabilities)
            if classes[best] in CLASS_INDEX:
                row.proposed_label = CLASS_INDEX[classes[best]]
                row.proposed_probability = round(float(p[best]), 4)
        faces.append(row)
    with transaction.atomic():
        LabelingFace.objects.filter(photo=photo).delete()  # a retry after a crash starts the photo over
        LabelingFace.objects.bulk_create(faces)
        LabelingPhoto.objects.filter(pk=photo.pk).update(
            status=LabelingPhoto.Status.DONE, num_faces=len(faces), file=""
        )
        _remove_file_on_commit(photo)


def _expand_zip(photo: LabelingPhoto) -> None:
    """Turn a zip into one pending photo per member, through the one archive guard (the import's limits).

    The guard refuses a zip inside the zip, so expanding never goes more than one level deep.
    """
    try:
        archive = GuardedZip(photo.file.path, Limits.from_settings(settings))
    except ArchiveError as error:
        return _mark(photo, LabelingPhoto.Status.UNREADABLE, error.message)
    except ValueError:  # the row has lost its file
        return _mark(photo, LabelingPhoto.Status.UNREADABLE, "The uploaded file is no longer on the server.")
    with archive:
        members = [m for m in archive.files if not is_system_file(m.filename)]
        if not members:
            return _mark(photo, LabelingPhoto.Status.NO_FACE, "The zip holds no files.")
        stem = Path(photo.name).name
        rows = []
        for member in members:
            name = f"{stem}/{member.filename}"[-255:]
            row = LabelingPhoto(labeling_set_id=photo.labeling_set_id, name=name)
            if member.file_size > settings.FERWEB_MAX_IMAGE_BYTES:
                row.status, row.reason = LabelingPhoto.Status.UNREADABLE, _too_large_message()
                rows.append(row)
                continue
            try:
                data = archive.read(member)
            except UnreadableMember as error:
                row.status, row.reason = LabelingPhoto.Status.UNREADABLE, f"Could not be extracted ({error})."[:255]
            else:
                row.file.save(PurePosixPath(member.filename).name or "photo", ContentFile(data), save=False)
            rows.append(row)
    with transaction.atomic():
        LabelingPhoto.objects.bulk_create(rows)
        _mark(photo, LabelingPhoto.Status.EXPANDED)


def _too_large_message() -> str:
    return f"Larger than the {settings.FERWEB_MAX_IMAGE_BYTES // (1024 * 1024)} MB limit for one photo."


# ---------------------------------------------------------------- review


@transaction.atomic
def labeling_face_update(*, face: LabelingFace, label: str | None = None, status: str | None = None) -> LabelingFace:
    """Confirm (with a label, or the proposal), correct, skip, reject (not a usable face: it stays out of
    datasets made from the set), or reset a face to pending. Each decision is timed, for undo."""
    choices = [s.value for s in LabelingFace.Status]
    if status is not None and status not in choices:
        raise LabelingError("bad_status", f"Unknown status {status!r}: use one of {', '.join(choices)}.")
    if label is not None:
        if status not in (None, LabelingFace.Status.CONFIRMED):
            raise LabelingError("bad_status", f"A label confirms the face; it cannot go with status {status!r}.")
        face.confirmed_label, face.status = _label_index(label), LabelingFace.Status.CONFIRMED
    elif status == LabelingFace.Status.CONFIRMED:
        if face.proposed_label is None:
            raise LabelingError(
                "no_proposal", f"This face has no proposal to accept: give its label, one of {', '.join(CLASSES)}."
            )
        face.confirmed_label, face.status = face.proposed_label, LabelingFace.Status.CONFIRMED
    elif status is not None:
        face.confirmed_label, face.status = None, status
    else:
        raise LabelingError("nothing_to_do", "Send a label (one of " + ", ".join(CLASSES) + ") or a status.")
    face.decided_at = None if face.status == LabelingFace.Status.PENDING else timezone.now()
    face.save(update_fields=["confirmed_label", "status", "decided_at", "updated_at"])
    return face


@transaction.atomic
def labeling_undo_last(*, labeling_set: LabelingSet) -> tuple[LabelingFace, str]:
    """Put the face decided most recently back to pending, whatever the decision was; returns it with
    the status it had. Again and again walks back through earlier decisions (they are stored, so this
    works after a reload too)."""
    face = (
        LabelingFace.objects.select_for_update().filter(labeling_set_id=labeling_set.pk, decided_at__isnull=False)
        .exclude(status=LabelingFace.Status.PENDING).order_by("-decided_at", "-id").first()
    )
    if face is None:
        raise LabelingError("nothing_to_undo", "There is no decision to undo in this set.")
    undone = face.status
    return labeling_face_update(face=face, status=LabelingFace.Status.PENDING), undone


@transaction.atomic
def labeling_accept_proposals(*, labeling_set: LabelingSet, min_probability: float) -> int:
    """Confirm every pending face whose proposal is at least this probable; returns how many."""
    if not 0.0 <= min_probability <= 1.0:
        raise LabelingError("bad_threshold", "min_probability is a probability between 0 and 1 (0.9 for 90%).")
    return LabelingFace.objects.filter(
        labeling_set_id=labeling_set.pk, status=LabelingFace.Status.PENDING, proposed_label__isnull=False,
        proposed_probability__gte=min_probability,
    ).update(
        confirmed_label=F("proposed_label"), status=LabelingFace.Status.CONFIRMED, decided_at=timezone.now(),
        updated_at=timezone.now(),
    )


def stratified_splits(labels: np.ndarray, *, test_share: float, seed: int) -> np.ndarray:
    """"train" for all, or a seeded `test_share` of each class in "test" (classes of one face stay in train)."""
    splits = np.full(len(labels), "train", dtype=object)
    if test_share <= 0:
        return splits.astype(str)
    rng = np.random.default_rng(seed)
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        if len(members) < 2:
            continue
        count = min(len(members) - 1, max(1, int(round(len(members) * test_share))))
        splits[rng.permutation(members)[:count]] = "test"
    return splits.astype(str)


@transaction.atomic
def labeling_create_dataset(
    *, labeling_set: LabelingSet, owner, name: str = "", test_share: float = 0.0, seed: int = 0, into=None
):
    """A ready dataset from the confirmed faces: all in train, or a stratified test share. With `into`
    (a ready dataset of the owner's), the faces are added to it instead, as a new version of it."""
    from ferweb.datasets.services import DatasetNameTaken, dataset_add_faces, dataset_create_from_faces

    if not 0.0 <= test_share <= MAX_TEST_SHARE:
        raise LabelingError("bad_test_share", f"test_share is between 0 and {MAX_TEST_SHARE} (0.2 for 20%).")
    rows = list(
        LabelingFace.objects.filter(labeling_set_id=labeling_set.pk, status=LabelingFace.Status.CONFIRMED)
        .order_by("id").values_list("crop_png", "confirmed_label", "source_name")
    )
    if not rows:
        raise LabelingError(
            "nothing_confirmed", "No face is confirmed yet: confirm or correct some faces before creating a dataset."
        )
    pixels = np.stack([cv2.imdecode(np.frombuffer(bytes(png), np.uint8), cv2.IMREAD_GRAYSCALE) for png, _, _ in rows])
    labels = np.asarray([label for _, label, _ in rows], dtype=np.int64)
    faces = {"pixels": pixels, "labels": labels, "splits": stratified_splits(labels, test_share=test_share, seed=seed),
             "source_names": [source for _, _, source in rows]}
    if into is not None:
        if labeling_set.datasets.filter(pk=into.pk).exists():
            raise LabelingError("already_added", f"These faces were already added to dataset #{into.pk} "
                                                 f"\u201c{into.name}\u201d.", field="dataset")
        try:
            dataset_add_faces(dataset=into, user=owner, **faces)
        except ValueError as error:
            raise LabelingError("invalid", str(error), field="dataset") from None
        dataset = into
        dataset.refresh_from_db()
    else:
        try:
            dataset = dataset_create_from_faces(
                owner=owner, name=name, default_name=f"{labeling_set.name} (labeled)",
                source_name=f"Labeling set #{labeling_set.pk}: {labeling_set.name}", **faces,
            )
        except DatasetNameTaken as error:
            raise LabelingError(error.code, error.message, field="name") from None
    labeling_set.datasets.add(dataset)
    dataset.added = len(rows)
    return dataset


@transaction.atomic
def labeling_set_from_items(
    *, owner, items, name: str, probabilities: dict[int, dict[str, float]] | None = None, model_version: str = ""
) -> LabelingSet:
    """A ready labeling set holding copies of dataset faces (`items`, DatasetItems), pending, for a person to
    look at again: each face's proposal is the highest of its `probabilities` ({item id: {class: p}}, e.g.
    a run's prediction), else the label it has now. The dataset itself is not changed."""
    from ferweb.datasets.models import Dataset

    rows = list(items.order_by("dataset_id", "index").values_list("id", "dataset_id", "index", "label", "source_name"))
    if not rows:
        raise LabelingError("no_faces", "Choose at least one face to review.")
    labeling_set = LabelingSet.objects.create(owner=owner, name=(name or "Review").strip()[:200],
                                              status=LabelingSet.Status.READY)
    datasets = Dataset.objects.in_bulk({dataset_id for _, dataset_id, _, _, _ in rows})
    packed = {pk: np.load(dataset.pixels_path, mmap_mode="r") for pk, dataset in datasets.items()}
    for item_id, dataset_id, index, label, source_name in rows:
        ok, png = cv2.imencode(".png", np.asarray(packed[dataset_id][index], dtype=np.uint8))
        face = LabelingFace(labeling_set=labeling_set, crop_png=png.tobytes(), model_version=model_version[:200],
                            source_name=(f"{datasets[dataset_id].name}: {source_name or f'face {index + 1}'}")[-255:])
        p = (probabilities or {}).get(item_id)
        if p:
            best = max(p, key=p.get)
            face.probabilities = {c: round(float(v), 4) for c, v in p.items()}
            face.proposed_label, face.proposed_probability = _label_index(best), round(float(p[best]), 4)
        else:
            face.proposed_label = label
        face.save()  # one by one: save() fills the fields computed from the probabilities
    return labeling_set


def labeling_set_delete_preview(*, labeling_set: LabelingSet) -> DeletePreview:
    """What labeling_set_delete would do: the set, its photos and faces go; datasets made from it stay."""
    faces = LabelingFace.objects.filter(labeling_set_id=labeling_set.pk)
    confirmed = faces.filter(status=LabelingFace.Status.CONFIRMED).count()
    made = labeling_set.datasets.filter(archived_at__isnull=True).count()
    waiting = " Processing stops." if labeling_set.status == LabelingSet.Status.PROCESSING else ""
    stays = (" The dataset made from it stays." if made == 1 else
             f" The {made} datasets made from it stay." if made else "")
    return DeletePreview(
        what=f"Labeling set #{labeling_set.pk} \"{labeling_set.name}\" will be deleted with its "
             f"{count(labeling_set.photos_total, 'photo')} and {count(faces.count(), 'face')} "
             f"({confirmed:,} confirmed).{waiting}{stays}",
        frees_bytes=_stored_bytes(labeling_set),
    )


def _stored_bytes(labeling_set: LabelingSet) -> int:
    """Photos waiting on disk, and the face crops kept in the database."""
    crops = LabelingFace.objects.filter(labeling_set_id=labeling_set.pk).aggregate(n=Sum(Length("crop_png")))["n"]
    return bytes_on_disk(labeling_set.storage_dir) + int(crops or 0)


@transaction.atomic
def labeling_set_delete(*, labeling_set: LabelingSet) -> None:
    """Delete the set with its photos and faces (datasets made from it stay).

    Processing still running is cancelled first: its worker finds the set gone at its next
    heartbeat and stops. The photos' folder goes once the transaction commits.
    """
    if labeling_set.status == LabelingSet.Status.PROCESSING:
        labeling_jobs.cancel(labeling_set)
    storage_dir = labeling_set.storage_dir
    LabelingSet.objects.filter(pk=labeling_set.pk).delete()
    transaction.on_commit(lambda: shutil.rmtree(storage_dir, ignore_errors=True))
