"""The label-error finder as a background job: start a scan of a dataset, run it, read its findings,
and apply a reviewer's decisions to the faces.

A scan (LabelIssueScan, a ferweb.jobs Job) runs on the `inference` queue: a model classifies every
face that is not excluded with ONNX Runtime, and confident learning (fercore.label_issues) ranks the
faces whose given label is probably wrong. The model is fixed when the scan starts: the shipped
default, the owner's active model, or one of their versions. A version trained on this very dataset
saw these faces, so its scores are in-sample (the faces it memorised look right to it): the scan
records that, and the page says so.

A cross-validation scan scores every face with a model that never saw it instead: k models, each
trained on the other folds. It trains, so it runs on the `training` queue (its own task, see
LabelIssueScans._send; training_jobs.cross_validation starts and runs it), and ranks the faces with
the same `rank_issues`.
"""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from django.db import models, transaction
from django.utils.module_loading import import_string

from fercore.classes import CLASSES
from fercore.face_prints import count_seen
from ferweb import quotas
from ferweb.jobs import JobLifecycle, task_queue

from . import services
from .models import Dataset, DatasetItem, LabelIssueScan

logger = logging.getLogger(__name__)

BATCH = 256  # faces per ONNX Runtime call; progress and the cancel check follow each batch
CLASSIFYING, RANKING = "classifying", "ranking"  # phases, named on the page
MODEL_CHOICES = ("default", "active")  # or a model version id
CROSS_VALIDATION = "cross-validation"  # the model_choice of a scan whose scores come from k folds
CROSS_VALIDATION_TASK = "training_jobs.tasks.cross_validate_scan"
IN_SAMPLE_WARNING = (
    "This model was trained on these faces, so its scores are in-sample: it has learned their labels, "
    "wrong ones included, and finds fewer of the mistakes. A model that never saw them gives fairer scores."
)


class ScanRefused(Exception):
    """The scan cannot start: `code` for machines, `message` for people, `status` for the API."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


@dataclass(frozen=True)
class ChosenModel:
    choice: str  # "default", "active" or the version id as text
    version_id: int | None
    label: str
    path: str
    in_sample: bool


def trained_on(dataset: Dataset, version_id: int | None) -> bool:
    """Whether a model version came from a training run on `dataset` (its scores are then in-sample).

    Asked through the dataset's reverse relation to its runs, so this app imports no training code."""
    if version_id is None:
        return False
    from inference.models import ModelVersion

    run_id = ModelVersion.objects.filter(pk=version_id).values_list("run_id", flat=True).first()
    return run_id is not None and dataset.training_runs.filter(pk=run_id).exists()


IN_SAMPLE_SHARE = 0.1  # the share of a dataset's faces a model trained on that makes its scores in-sample


def shipped_trained_on(dataset: Dataset, shipped) -> bool:
    """Whether the shipped model trained on these faces: at least IN_SAMPLE_SHARE of them are among
    the prints of its training faces (default.faces.npy). Without prints, whether the dataset or one
    of its splits has exactly the class counts its card records (FER2013's training split)."""
    if shipped.trained_prints is not None and dataset.pixels_path.exists():
        return _seen_share(str(dataset.pixels_path), dataset.pixels_path.stat().st_mtime_ns,
                           str(shipped.trained_prints), shipped.trained_prints.stat().st_mtime_ns) >= IN_SAMPLE_SHARE
    wanted = {name: int(n) for name, n in shipped.trained_class_counts.items() if int(n)}
    if not wanted:
        return False
    if {name: n for name, n in (dataset.class_counts or {}).items() if n} == wanted:
        return True
    by_split: dict[str, dict[str, int]] = {}
    rows = DatasetItem.objects.filter(dataset=dataset).values_list("split", "label").annotate(n=models.Count("id"))
    for split, label, n in rows:
        by_split.setdefault(split, {})[CLASSES[label]] = n
    return wanted in by_split.values()


@lru_cache(maxsize=32)
def _seen_share(pixels_path: str, pixels_stamp: int, prints_path: str, prints_stamp: int) -> float:
    # Keyed by the files' times: the packed faces change only when faces are added.
    pixels = np.load(pixels_path, mmap_mode="r")
    return count_seen(np.asarray(pixels), np.load(prints_path)) / max(1, len(pixels))


def model_choose(*, user, dataset: Dataset, model) -> ChosenModel:
    """The model a scan of `dataset` uses: "default" (shipped), "active" (the user's) or a version id
    the user may see. Raises ScanRefused (code invalid) with the valid choices."""
    from inference.selectors import active_model_for, model_list_for, shipped_model

    if model == "default":
        shipped = shipped_model()
        return ChosenModel("default", None, shipped.version, str(shipped.path), shipped_trained_on(dataset, shipped))
    if model == "active":
        active = active_model_for(user)
        in_sample = (trained_on(dataset, active.model_version_id) if active.model_version_id is not None
                     else shipped_trained_on(dataset, shipped_model()))
        return ChosenModel("active", active.model_version_id, active.version, str(active.path), in_sample)
    try:
        version_id = int(model)
    except (TypeError, ValueError):
        version_id = None
    version = model_list_for(user).filter(pk=version_id).first() if version_id is not None else None
    if version is None:
        raise ScanRefused("invalid", f"model must be \"default\", \"active\", \"cross-validation\" or the id of one of "
                                     f"your model versions; got {model!r}.")
    return ChosenModel(str(version.pk), version.pk, version.version, str(version.path), trained_on(dataset, version.pk))


# ---------------------------------------------------------------- the job


class LabelIssueScans(JobLifecycle):
    """Label-error scans as background jobs (ferweb.jobs); the page polls the scan's state."""

    model = LabelIssueScan
    task = "ferweb.datasets.tasks.scan_label_issues"
    queued, running = LabelIssueScan.Status.QUEUED, LabelIssueScan.Status.RUNNING
    failed, cancelled = LabelIssueScan.Status.FAILED, LabelIssueScan.Status.CANCELLED
    noun = "label-error scan"
    gave_up_advice = "Start the scan again; on a very large dataset, choose a smaller model."
    retry_fields = {"processed": 0, "progress": 0.0}  # a restart scores every face again
    claim_fields = {"phase": CLASSIFYING}

    def _send(self, job_id: int) -> None:
        """A cross-validation scan trains, so its task goes to the training queue; others classify."""
        if LabelIssueScan.objects.filter(pk=job_id, model_choice=CROSS_VALIDATION).exists():
            self.sent(job_id, import_string(CROSS_VALIDATION_TASK).delay(job_id))
        else:
            super()._send(job_id)

    def queues(self) -> set[str]:
        return {self.queue(), task_queue(CROSS_VALIDATION_TASK)}

    def ended(self, scan: LabelIssueScan) -> None:
        if scan.model_choice == CROSS_VALIDATION:  # the folds' checkpoints, kept only for a restart
            folder = cross_validation_dir(scan)
            transaction.on_commit(lambda: shutil.rmtree(folder, ignore_errors=True))


label_issue_scans = LabelIssueScans()


def cross_validation_dir(scan: LabelIssueScan) -> Path:
    """Where a cross-validation scan trains its folds (checkpoints, each fold's scores); removed when it ends."""
    return scan.dataset.storage_dir / "label-issues" / f"cross-validation-{scan.pk}"


@dataclass(frozen=True)
class CrossValidation:
    """What a cross-validation scan trains (training_jobs.cross_validation.cv_plan makes it)."""

    folds: int
    recipe: dict  # the validated TrainConfig each fold trains
    estimated_seconds: float
    label: str  # e.g. "5-fold cross-validation (quick preset)"


def scan_refusal(dataset: Dataset) -> ScanRefused | None:
    """Why no scan of `dataset` can start now: not_ready (importing or failed) or scan_running (one at a time)."""
    if dataset.status != Dataset.Status.READY:
        return ScanRefused("not_ready", f"Dataset {dataset.pk} is {dataset.status}; only a ready dataset can be "
                                        "searched for label errors.", status=409)
    current = LabelIssueScan.objects.filter(dataset=dataset).first()
    if current is not None and not current.is_finished:
        return ScanRefused("scan_running", "A scan of this dataset is already running; wait for it to end "
                                           "before starting another.", status=409)
    return None


@transaction.atomic
def scan_start(*, owner, dataset: Dataset, model, cross_validation: CrossValidation | None = None) -> LabelIssueScan:
    """Start a scan of `dataset` with `model` (see model_choose), or by `cross_validation` (model
    "cross-validation"); it replaces a finished scan.

    Raises ScanRefused: not_ready (the dataset is still importing or failed), scan_running (409: one
    scan per dataset at a time), invalid (an unknown model, or cross-validation without its plan).
    """
    dataset = Dataset.objects.select_for_update().get(pk=dataset.pk)  # one start at a time per dataset
    refusal = scan_refusal(dataset)
    if refusal is not None:
        raise refusal
    fields = {}
    if model == CROSS_VALIDATION:
        quotas.check_active_runs(owner)  # its folds train on the training worker, as runs do
        if cross_validation is None:
            raise ScanRefused("invalid", "A cross-validation scan needs its folds and recipe "
                                         "(training_jobs.cross_validation.cv_scan_start).")
        chosen = ChosenModel(CROSS_VALIDATION, None, cross_validation.label, "", in_sample=False)
        fields = {"folds": cross_validation.folds, "recipe": cross_validation.recipe,
                  "estimated_seconds": round(cross_validation.estimated_seconds, 1)}
    else:
        chosen = model_choose(user=owner, dataset=dataset, model=model)
    LabelIssueScan.objects.filter(dataset=dataset).delete()
    scan = LabelIssueScan.objects.create(
        owner=owner, dataset=dataset, model_choice=chosen.choice, model_version_id=chosen.version_id,
        model_label=chosen.label[:100], model_path=chosen.path[:500], in_sample=chosen.in_sample, phase="queued",
        **fields,
    )
    label_issue_scans.enqueue(scan.pk)
    return scan


class _ScanGone(Exception):
    """The scan was cancelled, deleted or taken over while it ran: stop."""


def scan_run(*, scan_id: int, worker: str = "", redelivered: bool = False) -> LabelIssueScan | None:
    """Run a queued scan to its end.

    1. claim it atomically (a second delivery finds it taken, unless its worker died);
    2. read the faces that are not excluded, with their labels and item ids;
    3. classify them batch by batch with the scan's model (progress and a cancel check per batch);
    4. rank them by confident learning and store the flagged faces, most likely wrong first.
    """
    if not label_issue_scans.claim(scan_id, worker=worker, redelivered=redelivered):
        return None
    scan = LabelIssueScan.objects.select_related("dataset").filter(pk=scan_id).first()
    if scan is None:
        return None
    from inference.engine import ModelUnavailable

    try:
        issues, counts = _score(scan)
    except _ScanGone:
        return LabelIssueScan.objects.filter(pk=scan_id).first()
    except ModelUnavailable as error:
        label_issue_scans.finish(scan, LabelIssueScan.Status.FAILED, error="no_model", message=str(error))
    except FileNotFoundError:
        label_issue_scans.finish(scan, LabelIssueScan.Status.FAILED, error="faces_missing",
                                 message="The dataset's stored faces are missing on the server; upload it again.")
    except Exception as error:  # recorded for the user, logged for the operator
        logger.exception("label-error scan %s failed", scan_id)
        label_issue_scans.finish(scan, LabelIssueScan.Status.FAILED, error="internal",
                                 message=f"The scan stopped on an unexpected error ({type(error).__name__}: {error}).")
    else:
        label_issue_scans.finish(scan, LabelIssueScan.Status.SUCCEEDED, progress=100.0, issues=issues, counts=counts)
    return LabelIssueScan.objects.filter(pk=scan_id).first()


def _score(scan: LabelIssueScan) -> tuple[list[dict], dict]:
    from inference.engine import classify, get_engine

    from .selectors import dataset_arrays

    pixels, labels, _, ids = dataset_arrays(scan.dataset)
    model = get_engine().models.get(scan.model_path)
    if tuple(model.classes) != tuple(CLASSES):
        raise ValueError(f"the model's classes {', '.join(model.classes)} are not FERWeb's {', '.join(CLASSES)}")
    if not label_issue_scans.heartbeat(scan, total=len(labels), processed=0, phase=CLASSIFYING):
        raise _ScanGone()
    probs = np.zeros((len(labels), len(CLASSES)), np.float64)
    for start in range(0, len(labels), BATCH):
        end = min(start + BATCH, len(labels))
        probs[start:end] = classify(model, pixels[start:end])
        if not label_issue_scans.heartbeat(scan, processed=end, progress=round(95.0 * end / len(labels), 1)):
            raise _ScanGone()
    if not label_issue_scans.heartbeat(scan, phase=RANKING, progress=95.0):
        raise _ScanGone()
    return rank_issues(labels, probs, ids)


def rank_issues(labels: np.ndarray, probs: np.ndarray, ids: np.ndarray) -> tuple[list[dict], dict]:
    """Confident learning on the faces' given labels and out-of-sample probabilities [N, 7] -> (the
    flagged faces by item id, most likely wrong first; the scan's counts). Every kind of scan ranks here."""
    from fercore.label_issues import find_label_issues

    findings = find_label_issues(labels, probs)
    issues = [{"item": int(ids[issue.index]), "given": issue.given, "suggested": issue.suggested,
               "score": round(issue.score, 4)} for issue in findings.issues]
    by_class = {name: 0 for name in CLASSES}
    for issue in findings.issues:
        by_class[CLASSES[issue.given]] += 1
    return issues, {"scored": int(len(labels)), "flagged": len(issues), "flagged_by_class": by_class}


# ---------------------------------------------------------------- reads


def scan_of(dataset: Dataset) -> LabelIssueScan | None:
    return LabelIssueScan.objects.filter(dataset=dataset).first()


def scan_issues(scan: LabelIssueScan, limit: int | None = None) -> list[dict]:
    """The scan's flagged faces, most likely wrong first, with each face's row, file name and current
    label and exclusion (a reviewer's decisions show); faces deleted since are left out."""
    issues = scan.issues[:limit] if limit is not None else scan.issues
    items = {row["id"]: row for row in DatasetItem.objects.filter(
        dataset_id=scan.dataset_id, pk__in=[issue["item"] for issue in issues]
    ).values("id", "index", "source_name", "label", "excluded")}
    rows = []
    for issue in issues:
        item = items.get(issue["item"])
        if item is None:
            continue
        rows.append({
            "item": issue["item"], "index": item["index"], "source_name": item["source_name"],
            "given": CLASSES[issue["given"]], "suggested": CLASSES[issue["suggested"]], "score": issue["score"],
            "label": CLASSES[item["label"]], "excluded": item["excluded"],
        })
    return rows


# ---------------------------------------------------------------- a reviewer's decisions


def item_decide(*, dataset: Dataset, item_id: int, label: str | None = None, excluded: bool | None = None,
                user=None, source: str = "edit") -> DatasetItem:
    """Relabel a face of `dataset` (a class name) and/or exclude it or take it back; undo is the same
    call with the previous values. The change makes (or joins) a new version of the dataset. Raises
    DatasetItem.DoesNotExist and ValueError (an unknown class)."""
    items = DatasetItem.objects.filter(dataset_id=dataset.pk, pk=item_id)
    if not items.exists():
        raise DatasetItem.DoesNotExist(f"Dataset {dataset.pk} has no item {item_id}.")
    if label is not None and label not in CLASSES:
        raise ValueError(f"label must be one of {', '.join(CLASSES)}; got {label!r}")
    services.dataset_items_update(
        items=items, label=CLASSES.index(label) if label is not None else None, excluded=excluded,
        user=user, source=source,
    )
    return items.get()
