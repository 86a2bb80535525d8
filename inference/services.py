"""Writes of the inference app: batch/video jobs from upload to results, and the model registry
(versions, the active choice, the site default)."""
import csv
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from fercore.archive import Limits
from fercore.preprocess import crop_face
from ferweb.jobs import JobLifecycle

from .engine import ModelUnavailable, get_engine
from .models import ActiveModelChoice, InferenceJob, ModelVersion
from .selectors import active_model_for
from .tracking import FaceStats, IoUTracker, SourceError, video_frames, zip_images

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = {".mp4", ".m4v", ".mov", ".webm", ".avi", ".mkv", ".mpg", ".mpeg", ".wmv", ".ogv"}
ZIP_SUFFIXES = {".zip"}
MIN_TRACK_DETECTIONS = 2  # detections before a track counts as a person in the summary
PROGRESS_EVERY_S = 0.5  # seconds between progress writes and cancellation checks


class JobInputError(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def job_kind_for(name: str) -> str:
    suffix = Path(name).suffix.lower()
    if suffix in ZIP_SUFFIXES:
        return InferenceJob.Kind.IMAGES
    if suffix in VIDEO_SUFFIXES:
        return InferenceJob.Kind.VIDEO
    raise JobInputError(
        "unsupported_file",
        f"Unsupported file {name!r}: upload a .zip of photos or a video "
        f"({', '.join(sorted(VIDEO_SUFFIXES))}).",
    )


@transaction.atomic
def job_create(*, owner, upload: UploadedFile, every_k: int = 1) -> InferenceJob:
    """Store the upload and queue the job once the row is committed."""
    if not 1 <= every_k <= 1000:
        raise JobInputError("bad_every_k", "every_k must be between 1 and 1000.")
    kind = job_kind_for(upload.name)
    from ferweb import quotas  # a shared helper, read late: it counts rows of several apps

    quotas.check_active_jobs(owner)
    quotas.check_storage(owner, upload.size or 0)
    job = InferenceJob(owner=owner, kind=kind, every_k=every_k, source_name=Path(upload.name).name[:255])
    job.source.save(Path(upload.name).name, upload, save=False)
    job.save()
    inference_jobs.enqueue(job.pk)
    return job


@transaction.atomic
def job_cancel(*, job: InferenceJob) -> InferenceJob:
    """Stop a queued or running job; the worker notices at its next progress write and stops."""
    inference_jobs.cancel(job)
    return job


@transaction.atomic
def job_delete(*, job: InferenceJob) -> None:
    """Cancel the job if it still runs, then remove its upload, its results and its row.

    A worker still inside the job stops at its next progress write: it finds the job
    cancelled (or gone) and writes nothing more.
    """
    job_cancel(job=job)
    _remove_upload(job)
    results_dir = job.results_dir
    InferenceJob.objects.filter(pk=job.pk).delete()
    transaction.on_commit(lambda: shutil.rmtree(results_dir, ignore_errors=True))


def job_delete_preview(*, job: InferenceJob):
    """What job_delete would do: the job, its upload and its results go; the model it used stays."""
    from ferweb.deletion import DeletePreview, bytes_on_disk

    upload = Path(settings.MEDIA_ROOT) / job.source.name if job.source else None
    stops = "" if job.is_finished else " It stops first."
    results = "its results (CSV, JSON and summary)" if job.status == InferenceJob.Status.SUCCEEDED else "its record"
    return DeletePreview(
        what=f"Job #{job.pk} on \"{job.source_name}\" will be deleted with {results}"
             f"{' and its upload' if upload else ''}.{stops}",
        frees_bytes=bytes_on_disk(job.results_dir, upload),
    )


def _remove_upload(job: InferenceJob) -> None:
    """The uploaded zip or video is needed only until the job ends; the results stay.

    Deleted once the transaction commits. A worker that still reads it keeps its open file
    (POSIX), so cancelling a running job never breaks the worker mid-frame.
    """
    if not job.source:
        return
    name, storage = job.source.name, job.source.storage
    InferenceJob.objects.filter(pk=job.pk).update(source="")
    job.source = ""
    transaction.on_commit(lambda: storage.delete(name))


def job_event(job: InferenceJob) -> dict:
    return {
        "id": job.pk, "status": job.status, "progress": round(job.progress, 1), "processed": job.processed,
        "total": job.total, "num_faces": job.num_faces, "error": job.error,
        "human_readable_error": job.human_readable_error,
    }


def _send(job: InferenceJob, message: dict):
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(job.group_name, message)
    except Exception:  # progress is best effort; the row is the truth
        log.warning("could not publish progress of job %s", job.pk, exc_info=True)


class InferenceJobs(JobLifecycle):
    """Batch and video jobs as background jobs (ferweb.jobs); followers hear job.progress events."""

    model = InferenceJob
    task = "inference.tasks.run_inference_job"
    queued, running = InferenceJob.Status.QUEUED, InferenceJob.Status.RUNNING
    failed, cancelled = InferenceJob.Status.FAILED, InferenceJob.Status.CANCELLED
    retry_fields = {"processed": 0, "num_faces": 0, "progress": 0.0}  # a restart reads the upload from the start

    def publish(self, job: InferenceJob, message: str) -> None:
        _send(job, {"type": "job.progress", **job_event(job)})

    def ended(self, job: InferenceJob) -> None:
        _remove_upload(job)


inference_jobs = InferenceJobs()


def _finish(job: InferenceJob, status: str, *, error: str = "", message: str = "", **fields) -> InferenceJob | None:
    """Record the outcome unless the job was cancelled or taken over meanwhile (its upload goes as it ends)."""
    inference_jobs.finish(job, status, error=error, message=message, **fields)
    current = InferenceJob.objects.filter(pk=job.pk).first()
    if current is None:  # deleted while it ran: leave nothing behind
        shutil.rmtree(job.results_dir, ignore_errors=True)
    return current


def job_run(*, job_id: int, worker: str = "", redelivered: bool = False) -> InferenceJob | None:
    """Run a queued job to the end.

    1. claim it atomically (a second delivery finds it taken, unless its worker died);
    2. fix the model: the user's active model now, for the whole job;
    3. stream images or every k-th frame: detect, classify, track, append CSV rows;
    4. write the summary and the JSON file; mark it succeeded (or failed, with a reason).
    """
    if not inference_jobs.claim(job_id, worker=worker, redelivered=redelivered):
        return None
    job = InferenceJob.objects.select_related("owner").filter(pk=job_id).first()
    if job is None:  # deleted since
        return None
    active = active_model_for(job.owner)
    job.model_path, job.model_version = str(active.path), active.version
    InferenceJob.objects.filter(pk=job.pk).update(model_path=job.model_path, model_version=job.model_version)
    try:
        summary = _process(job)
    except (SourceError, ModelUnavailable) as exc:
        code = getattr(exc, "code", "no_model")
        message = getattr(exc, "message", None) or str(exc)
        return _finish(job, InferenceJob.Status.FAILED, error=code, message=message)
    except Exception as exc:
        log.exception("inference job %s failed", job.pk)
        return _finish(job, InferenceJob.Status.FAILED, error="internal",
                       message=f"The job stopped on an unexpected error: {exc}")
    if summary is None:  # cancelled, or deleted
        return _after_stop(job)
    return _finish(job, InferenceJob.Status.SUCCEEDED, progress=100.0, summary=summary)


def _after_stop(job: InferenceJob) -> InferenceJob | None:
    """The job was cancelled or deleted while it ran; a deleted job leaves no results behind."""
    current = InferenceJob.objects.filter(pk=job.pk).first()
    if current is None:
        shutil.rmtree(job.results_dir, ignore_errors=True)
    return current


def _process(job: InferenceJob) -> dict | None:
    engine = get_engine()
    model = engine.models.get(job.model_path)
    classes = model.classes
    source_path = job.source.path
    if job.kind == InferenceJob.Kind.VIDEO:
        total, fps, items = video_frames(
            source_path, every_k=job.every_k, max_seconds=settings.FERWEB_VIDEO_MAX_SECONDS,
            max_pixels=settings.FERWEB_MAX_IMAGE_PIXELS,
        )
        tracker = IoUTracker(max_missed=max(2, int(round(fps / job.every_k))))
    else:
        total, items = zip_images(source_path, limits=Limits.from_settings(settings))
        tracker = None
    InferenceJob.objects.filter(pk=job.pk).update(total=total)
    job.results_dir.mkdir(parents=True, exist_ok=True)
    stats: dict = {}
    overall = np.zeros(len(classes), np.int64)
    processed = num_faces = unreadable = 0
    last_report = time.monotonic()
    with open(job.csv_path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["item", "frame", "time_s", "face_id", "x", "y", "w", "h", "label", *[f"p_{c}" for c in classes]])
        for item in items:
            if job.kind == InferenceJob.Kind.VIDEO:
                frame_index, t, gray = item
                name = ""
            else:
                name, gray, error = item
                frame_index, t = processed, float(processed)
                if gray is None:
                    unreadable += 1
            faces = engine.detector.detect(gray, thorough=tracker is None) if gray is not None else []
            crops = np.stack([crop_face(gray, f.box) for f in faces]) if faces else np.zeros((0, 48, 48), np.uint8)
            probs = engine.classify(model, crops)
            if tracker is not None:
                ids = tracker.update([f.box for f in faces])
            else:
                ids = [f"{processed + 1}.{i + 1}" for i in range(len(faces))]
            for face, face_id, p in zip(faces, ids, probs):
                label = int(np.argmax(p))
                overall[label] += 1
                writer.writerow([name, frame_index, f"{t:.3f}", face_id, *face.box, classes[label],
                                 *[f"{v:.4f}" for v in p]])
                if tracker is not None:
                    stats.setdefault(face_id, FaceStats(classes)).add(t, p)
            num_faces += len(faces)
            processed += 1
            now = time.monotonic()
            if now - last_report >= PROGRESS_EVERY_S:
                last_report = now
                handle.flush()
                if not _report(job, processed, total, num_faces):
                    return None
    if tracker is not None:
        # A track seen once is more likely a detector blip than a person: the CSV keeps it, the summary not.
        faces_summary = [s.summary(face_id) for face_id, s in sorted(stats.items()) if s.count >= MIN_TRACK_DETECTIONS]
    else:
        faces_summary = []
    summary = {
        "kind": job.kind,
        "items": processed,
        "unreadable": unreadable,
        "detections": num_faces,
        "model_version": job.model_version,
        "classes": list(classes),
        "label_counts": {c: int(n) for c, n in zip(classes, overall)},
        "share": {c: round(float(n) / max(1, int(overall.sum())), 4) for c, n in zip(classes, overall)},
        "faces": faces_summary,
    }
    if job.kind == InferenceJob.Kind.VIDEO:
        summary["fps"] = round(fps, 3)
        summary["every_k"] = job.every_k
    _write_json(job, summary)
    if not _report(job, processed, processed, num_faces):
        return None
    return summary


def _report(job: InferenceJob, processed: int, total: int, num_faces: int) -> bool:
    """Write progress; False when the job was cancelled meanwhile."""
    total = max(total, processed)
    progress = 100.0 * processed / total if total else 0.0
    if not inference_jobs.heartbeat(
        job, processed=processed, total=total, num_faces=num_faces, progress=min(99.9, progress)
    ):
        return False
    job.processed, job.total, job.num_faces, job.progress = processed, total, num_faces, min(99.9, progress)
    inference_jobs.notify(job, "progress")
    return True


def _write_json(job: InferenceJob, summary: dict):
    """results.json: the summary and every detection, streamed from the CSV row by row."""
    tmp = job.json_path.with_suffix(".tmp")
    with open(job.csv_path, newline="") as source, open(tmp, "w") as out:
        reader = csv.reader(source)
        header = next(reader)
        probs_at = header.index("label") + 1
        out.write('{"job": %d, "source": %s, "summary": %s, "detections": [' % (
            job.pk, json.dumps(job.source_name), json.dumps({k: v for k, v in summary.items() if k != "faces"})))
        for i, row in enumerate(reader):
            record = {
                "item": row[0] or None, "frame": int(row[1]), "time_s": float(row[2]), "face_id": row[3],
                "box": [int(v) for v in row[4:8]], "label": row[8],
                "probabilities": {c: float(v) for c, v in zip(summary["classes"], row[probs_at:])},
            }
            out.write(("," if i else "") + json.dumps(record))
        out.write('], "faces": %s}' % json.dumps(summary["faces"]))
    tmp.replace(job.json_path)


# ---------------------------------------------------------------- the model registry


def model_version_create(
    *,
    owner,
    onnx_file: str,
    architecture: str,
    version: str,
    run_id: int | None = None,
    metrics: dict | None = None,
    param_count: int | None = None,
    latency_ms: float | None = None,
    parity_max_abs_diff: float | None = None,
) -> ModelVersion:
    """Register an exported ONNX file (a path under MEDIA_ROOT) as a model version of `owner`."""
    return ModelVersion.objects.create(
        owner=owner, run_id=run_id, onnx_file=onnx_file, architecture=architecture, version=version,
        metrics=metrics or {}, param_count=param_count, latency_ms=latency_ms,
        parity_max_abs_diff=parity_max_abs_diff,
    )


def model_versions_forget_run(*, run_id: int) -> int:
    """A deleted run's versions stay, no longer naming it; returns how many there were."""
    return ModelVersion.objects.filter(run_id=run_id).update(run_id=None)


@transaction.atomic
def model_activate(*, user, model_version: ModelVersion | None, site_default: bool = False) -> ModelVersion | None:
    """The user's own choice, or (staff only) the site default for everyone without a choice.

    No version means the shipped model: as a user's choice it wins over a site default version;
    as the site default, it unsets the site default version.
    """
    if site_default:
        if not user.is_staff:
            raise PermissionError("only staff can set the site default model")
        others = ModelVersion.objects.filter(is_site_default=True)
        if model_version is None:
            others.update(is_site_default=False)
            return None
        others.exclude(pk=model_version.pk).update(is_site_default=False)
        ModelVersion.objects.filter(pk=model_version.pk).update(is_site_default=True)
        model_version.refresh_from_db()
        return model_version
    ActiveModelChoice.objects.update_or_create(user=user, defaults={"model_version": model_version})
    return model_version
