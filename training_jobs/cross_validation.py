"""Out-of-sample scores for the label-error finder by k-fold cross-validation.

A model scores the faces it trained on too kindly: it has learned their labels, wrong ones included.
Here every face is scored by a model that never saw it: the dataset's faces are split into k
stratified folds (seeded), and for each fold a model of the chosen recipe trains on the other
folds and scores the held-out one. The scan (ferweb.datasets.models.LabelIssueScan, model
"cross-validation") is a job of the label-error finder's lifecycle whose task runs on the
`training` queue; each fold trains in the isolated child process that runs use
(training_jobs.ml.isolated), with the held-out fold as its "test" split (the trainer holds out its
validation faces from the rest, fits the temperature on them and returns the calibrated
probabilities of the test faces), without occlusion maps or an ONNX export. The out-of-fold
probabilities are then ranked by the finder's own `rank_issues`.

The web process plans a scan (recipe and estimate) without torch; only the worker trains.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from fercore.classes import CLASSES
from ferweb.datasets import label_issues
from ferweb.datasets.label_issues import CROSS_VALIDATION, CrossValidation, label_issue_scans
from ferweb.datasets.models import Dataset, LabelIssueScan
from training_jobs import estimates
from training_jobs.services import RunError, fit_to_worker, memory_cap_bytes, recipe_from, validate_config

logger = logging.getLogger(__name__)

DEFAULT_FOLDS, MIN_FOLDS, MAX_FOLDS = 5, 2, 10
DEFAULT_PRESET = "quick"
RANKING_S = 2.0  # confident learning over the out-of-fold scores, for the estimate
TRAINING_SHARE = 0.9  # of a fold's progress; its evaluation takes the rest
SCORED_FILE = "cross-validation.npz"  # the last scan's out-of-fold scores, in the dataset's label-issues folder


class CrossValidationFailed(Exception):
    """A fold could not be trained: `code` for machines, the message for people."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


class _Stopped(Exception):
    """The scan was cancelled, deleted or taken over while a fold trained."""


# ---------------------------------------------------------------- planning (web process, no torch)


def cv_recipe(*, preset: str | None = None, epochs: int | None = None) -> dict:
    """The validated recipe every fold trains: the preset's (default `quick`) with `epochs` on top,
    without occlusion maps (nobody looks at a fold's). RunError on preset or epochs."""
    overrides = {"occlusion_per_class": 0}
    if epochs is not None:
        overrides["epochs"] = epochs
    return validate_config(recipe_from(preset or DEFAULT_PRESET, overrides))


def fold_sizes(faces: int, folds: int) -> list[int]:
    """How many faces each fold holds out (stratified_folds deals them out one by one)."""
    return [faces // folds + (1 if fold < faces % folds else 0) for fold in range(folds)]


def cv_estimate(recipe: dict, *, dataset: Dataset, folds: int, measure: bool = False) -> estimates.Estimate:
    """k trainings of `recipe`, each on the faces outside one fold and scoring that fold, plus the
    ranking: the sum of k run estimates (estimates.estimate_for) without their ONNX export. Its
    phases are summed over the folds; `basis` is the first fold's."""
    faces = dataset.num_items
    total = {phase: 0.0 for phase in estimates.PHASES}
    first = None
    for held in fold_sizes(faces, folds):
        estimate = estimates.estimate_for(recipe, split_counts={"train": faces - held, "test": held},
                                          class_counts=dataset.class_counts, num_items=faces,
                                          measure=measure and first is None)
        first = first or estimate
        for phase, seconds in estimate.phases.items():
            total[phase] += 0.0 if phase == "exporting" else seconds
    total["evaluating"] += RANKING_S
    return estimates.Estimate(phases=total, basis=first.basis, measured=first.measured, epochs=first.epochs,
                              batches_per_epoch=first.batches_per_epoch, rates=first.rates)


def plan_label(folds: int, preset: str | None, epochs: int | None) -> str:
    """e.g. "5-fold cross-validation (quick preset)", "3-fold cross-validation (quick preset, 2 epochs)"."""
    detail = f"{preset or DEFAULT_PRESET} preset" + (f", {epochs} epoch{'s' if epochs != 1 else ''}" if epochs else "")
    return f"{folds}-fold cross-validation ({detail})"


def cv_plan(*, dataset: Dataset, folds: int = DEFAULT_FOLDS, preset: str | None = None, epochs: int | None = None,
            measure: bool = False) -> tuple[CrossValidation, estimates.Estimate]:
    """What a cross-validation scan of `dataset` trains and how long it takes.

    1. folds: MIN_FOLDS to MAX_FOLDS, and at most half the dataset's faces (every training set keeps
       a validation share); 2. the recipe (cv_recipe); 3. fitted to the training worker (threads,
       memory: fit_to_worker); 4. the estimate (cv_estimate). RunError names the field.
    """
    if not MIN_FOLDS <= folds <= MAX_FOLDS:
        raise RunError({"folds": f"folds must be {MIN_FOLDS} to {MAX_FOLDS}; got {folds}"})
    if dataset.num_items < 2 * folds:
        raise RunError({"folds": f"dataset {dataset.pk} has {dataset.num_items} faces; {folds}-fold cross-validation "
                                 f"needs at least {2 * folds}. Choose fewer folds or add faces"})
    recipe = cv_recipe(preset=preset, epochs=epochs)
    recipe, _notes = fit_to_worker(recipe, faces=dataset.num_items)
    estimate = cv_estimate(recipe, dataset=dataset, folds=folds, measure=measure)
    plan = CrossValidation(folds=folds, recipe=recipe, estimated_seconds=estimate.seconds,
                           label=plan_label(folds, preset, epochs))
    return plan, estimate


def cv_scan_start(*, owner, dataset: Dataset, folds: int = DEFAULT_FOLDS, preset: str | None = None,
                  epochs: int | None = None) -> LabelIssueScan:
    """Start a cross-validation scan of `dataset` (it replaces a finished scan). Raises
    label_issues.ScanRefused (not_ready, scan_running) and RunError (folds, preset, epochs, batch_size)."""
    refusal = label_issues.scan_refusal(dataset)
    if refusal is not None:
        raise refusal
    plan, _estimate = cv_plan(dataset=dataset, folds=folds, preset=preset, epochs=epochs)
    return label_issues.scan_start(owner=owner, dataset=dataset, model=CROSS_VALIDATION, cross_validation=plan)


# ---------------------------------------------------------------- the folds


def stratified_folds(labels: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """The fold (0..folds-1) of every face: each class shuffled (seeded) and dealt out in turn, so
    every fold holds the same share of every class and the folds differ in size by one face at most."""
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(np.flatnonzero(labels == label)) for label in np.unique(labels)])
    assigned = np.empty(len(labels), np.int64)
    assigned[order] = np.arange(len(labels)) % folds
    return assigned


class FoldProgress:
    """The trainer's on_event, on_tick and should_stop for one scan: fold i of k trained to fraction f
    is 95% x (i + f) / k, written with a heartbeat at most once a second; the cancel flag is the
    lifecycle's (a heartbeat that finds the scan no longer held stops the fold)."""

    WRITE_INTERVAL_S = 1.0
    CANCEL_POLL_INTERVAL_S = 0.5

    def __init__(self, scan: LabelIssueScan, folds: int):
        self.scan, self.folds = scan, folds
        self.fold, self.fraction = 0, 0.0
        self.last_write, self.last_poll = 0.0, 0.0
        self.gone = False
        self.device, self.epochs = "", []  # what the folds measure refreshes the worker's throughput

    def percent(self) -> float:
        return round(95.0 * (self.fold + self.fraction) / self.folds, 1)

    def beat(self, **fields) -> None:
        self.last_write = time.monotonic()
        if not label_issue_scans.heartbeat(self.scan, progress=self.percent(), **fields):
            self.gone = True

    def start_fold(self, fold: int, *, processed: int) -> None:
        self.fold, self.fraction = fold, 0.0
        self.beat(phase=f"fold_{fold + 1}_of_{self.folds}", processed=processed)

    def on_event(self, event: dict) -> None:
        if event.get("type") == "run.batch":
            self.fraction = TRAINING_SHARE * min(1.0, float(event.get("progress", 0)) / 100)
        elif event.get("type") == "run.status":
            self.device = event.get("device") or self.device
            if event.get("phase") == "evaluating":
                self.fraction = TRAINING_SHARE
        elif event.get("type") == "run.epoch":
            self.epochs.append(event)
            estimates.throughput_from_epochs(self.scan.recipe, device=self.device, history=self.epochs,
                                             source=f"cross-validation scan {self.scan.pk}")
        if time.monotonic() - self.last_write >= self.WRITE_INTERVAL_S:
            self.beat()

    def tick(self) -> None:
        self.beat()

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self.gone and now - self.last_poll >= self.CANCEL_POLL_INTERVAL_S:
            self.last_poll = now
            self.gone = not label_issue_scans.held(self.scan).exists()
        return self.gone


def _fold_scores(path: Path, held: np.ndarray) -> np.ndarray | None:
    """A fold's probabilities saved by an earlier attempt of this scan, if it held out these very faces."""
    if not path.exists():
        return None
    with np.load(path) as saved:
        if not np.array_equal(saved["held"], held):
            return None
        return saved["probs"]


def _train_fold(scan: LabelIssueScan, progress: FoldProgress, *, fold: int, folds: np.ndarray, rows: np.ndarray,
                labels: np.ndarray, workdir: Path) -> np.ndarray:
    """Train the recipe on every fold but `fold` in the isolated child and return the calibrated
    probabilities [n_held, 7] of the held-out faces, in face order."""
    from training_jobs.ml.isolated import Job, run_isolated

    held = np.flatnonzero(folds == fold)
    job = Job(config=scan.recipe, pixels_path=str(scan.dataset.pixels_path), rows=rows, labels=labels,
              splits=np.where(folds == fold, "test", "train"), workdir=str(workdir), onnx_path="", version="",
              export=False)
    outcome = run_isolated(job, on_event=progress.on_event, should_stop=progress.should_stop,
                           memory_cap_bytes=memory_cap_bytes(), on_tick=progress.tick)
    where = f"Fold {fold + 1} of {scan.folds}"
    if outcome.status == "cancelled" or progress.gone:
        raise _Stopped()
    if outcome.code == "out_of_memory":
        raise CrossValidationFailed("out_of_memory", f"{where} ran out of memory ({outcome.message}): choose a "
                                                     "lighter preset or fewer faces.")
    if outcome.status != "succeeded":
        raise CrossValidationFailed(outcome.code or "internal_error", f"{where} failed: {outcome.message}")
    evaluation = outcome.result["evaluation"]
    indices = np.asarray(evaluation["indices"], np.int64)
    if not np.array_equal(np.sort(indices), held):
        raise CrossValidationFailed("internal_error", f"{where} scored other faces than it held out.")
    probs = np.empty((len(held), len(CLASSES)), np.float64)
    probs[np.searchsorted(held, indices)] = np.asarray(evaluation["probs"], np.float64)
    return probs


def _save_scores(scan: LabelIssueScan, *, ids, labels, probs, folds) -> None:
    """The out-of-fold probabilities beside the dataset, for a later look (overwritten by the next scan)."""
    path = scan.dataset.storage_dir / "label-issues" / SCORED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_suffix(".tmp.npz")
    np.savez(staging, item_ids=ids, labels=labels, probs=probs.astype(np.float32), folds=folds,
             scan=scan.pk, version=scan.dataset_version.number if scan.dataset_version_id else 0,
             recipe=json.dumps(scan.recipe))
    os.replace(staging, path)


def cross_validate(scan: LabelIssueScan) -> tuple[list[dict], dict]:
    """1. the dataset's newest version, sealed, is what gets scored (a restart scores the same one);
    2. its faces (excluded ones left out) in k stratified folds, seeded by the recipe's seed;
    3. each fold trained and scored in turn (a fold an earlier attempt finished is read back);
    4. the out-of-fold probabilities saved and ranked."""
    from ferweb.datasets.versions import version_rows, version_seal

    dataset = scan.dataset
    if scan.dataset_version_id is None:
        scan.dataset_version = version_seal(dataset, user=scan.owner)
    rows, labels, _splits, ids = version_rows(scan.dataset_version)
    if not dataset.pixels_path.exists():
        raise FileNotFoundError(dataset.pixels_path)
    k = scan.folds or DEFAULT_FOLDS
    if len(labels) < 2 * k:
        raise CrossValidationFailed("too_few_faces", f"The dataset has {len(labels)} faces now; {k}-fold "
                                                     f"cross-validation needs at least {2 * k}.")
    folds = stratified_folds(labels, k, seed=int(scan.recipe.get("seed", 42)))
    progress = FoldProgress(scan, k)
    if not label_issue_scans.heartbeat(scan, dataset_version=scan.dataset_version, total=len(labels), processed=0):
        raise _Stopped()
    workdir = label_issues.cross_validation_dir(scan)
    probs = np.zeros((len(labels), len(CLASSES)), np.float64)
    for fold in range(k):
        held = np.flatnonzero(folds == fold)
        progress.start_fold(fold, processed=int((folds < fold).sum()))
        if progress.gone:
            raise _Stopped()
        saved = workdir / f"fold-{fold + 1}.npz"
        scores = _fold_scores(saved, held)
        if scores is None:
            scores = _train_fold(scan, progress, fold=fold, folds=folds, rows=rows, labels=labels,
                                 workdir=workdir / f"fold-{fold + 1}")
            np.savez(saved, held=held, probs=scores)
            shutil.rmtree(workdir / f"fold-{fold + 1}", ignore_errors=True)  # its checkpoints are no longer needed
        probs[held] = scores
    if not label_issue_scans.heartbeat(scan, phase=label_issues.RANKING, progress=95.0, processed=len(labels)):
        raise _Stopped()
    _save_scores(scan, ids=ids, labels=labels, probs=probs, folds=folds)
    return label_issues.rank_issues(labels, probs, ids)


def cv_scan_run(*, scan_id: int, worker: str = "", redelivered: bool = False) -> LabelIssueScan | None:
    """Run a queued cross-validation scan to its end (the training worker's task): claim it through
    the finder's lifecycle, cross_validate, and finish it as succeeded or failed with a reason."""
    if not label_issue_scans.claim(scan_id, worker=worker, redelivered=redelivered):
        return None
    scan = LabelIssueScan.objects.select_related("dataset", "dataset_version", "owner").filter(pk=scan_id).first()
    if scan is None:
        return None
    try:
        issues, counts = cross_validate(scan)
    except _Stopped:
        pass
    except CrossValidationFailed as failure:
        label_issue_scans.finish(scan, LabelIssueScan.Status.FAILED, error=failure.code, message=str(failure))
    except FileNotFoundError:
        label_issue_scans.finish(scan, LabelIssueScan.Status.FAILED, error="faces_missing",
                                 message="The dataset's stored faces are missing on the server; upload it again.")
    except Exception as error:  # recorded for the user, logged for the operator
        logger.exception("cross-validation scan %s failed", scan_id)
        label_issue_scans.finish(scan, LabelIssueScan.Status.FAILED, error="internal",
                                 message=f"The scan stopped on an unexpected error ({type(error).__name__}: {error}).")
    else:
        label_issue_scans.finish(scan, LabelIssueScan.Status.SUCCEEDED, progress=100.0, issues=issues, counts=counts)
    if not LabelIssueScan.objects.filter(pk=scan_id, status=LabelIssueScan.Status.RUNNING).exists():
        # Ended (or deleted) while this worker stopped: the `ended` hook may have run before the child let go.
        shutil.rmtree(label_issues.cross_validation_dir(scan), ignore_errors=True)
    return LabelIssueScan.objects.filter(pk=scan_id).first()
