"""What fixing a dataset bought: a run and its retrain (any two runs of one dataset trained on different
versions of it) scored on the faces both evaluated, against the newer version's labels.

Each run's own accuracy comes from its own version's held-out faces, scored against that version's
labels. Once labels change, those differ: a relabeled face counts for another class, an excluded one
is gone, a moved one changes split. So the two accuracies alone cannot say whether the model got
better or the test got easier; on the faces both runs evaluated, under one set of labels, they can.
Reads only: the runs' evaluation files (training_jobs.evaluation_faces) and the versions' states.
"""
from __future__ import annotations

import numpy as np

from fercore.classes import CLASSES
from training_jobs import selectors
from training_jobs.evaluation_faces import evaluation_load
from training_jobs.models import TrainingRun

EXPLANATION = ("Both runs are scored on the faces both evaluated, against version {number}'s labels: each run's "
               "own accuracy comes from its own version's held-out faces and labels, which differ once labels "
               "change, so those two numbers alone do not compare.")


class NotComparable(Exception):
    """Two runs that this comparison does not fit; `code` is machine-readable, the message is for a person."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def version_line(version) -> dict:
    """A version as pages and answers name it: {number, content_hash, summary}."""
    return {"number": version.number, "content_hash": version.content_hash, "summary": version.summary}


def changes_since(older, newer) -> str:
    """What changed from version `older` to `newer` (any number of versions apart), in one line."""
    from ferweb.datasets.versions import changes_between, load_state, summary_of

    return summary_of(changes_between(load_state(older), load_state(newer)))


def versions_between(older, newer) -> list[dict]:
    """The versions after `older` up to `newer`, oldest first, each with its own change."""
    from ferweb.datasets.models import DatasetVersion

    chain = DatasetVersion.objects.filter(dataset_id=newer.dataset_id, number__gt=older.number,
                                          number__lte=newer.number).order_by("number")
    return [version_line(version) for version in chain]


def comparable_pair(runs: list[TrainingRun]) -> tuple[TrainingRun, TrainingRun]:
    """(the run on the older version, the run on the newer) of two runs of one dataset on different
    versions of it; NotComparable when they are not that."""
    if len(runs) != 2:
        raise NotComparable("invalid", "Compare exactly two runs: a run and one trained on another version of its "
                                       "dataset.")
    a, b = runs
    if a.dataset_id != b.dataset_id:
        raise NotComparable("different_datasets", f"Runs {a.pk} and {b.pk} trained on different datasets; the "
                                                  "comparison on common faces needs two versions of one dataset.")
    versions = [selectors.run_dataset_version(run) for run in runs]
    if None in versions:
        run = runs[versions.index(None)]
        raise NotComparable("no_dataset_version", f"Run {run.pk} does not know which version of dataset "
                                                  f"{run.dataset_id} it trained on.")
    if versions[0].pk == versions[1].pk:
        raise NotComparable("same_version", f"Runs {a.pk} and {b.pk} trained on the same version "
                                            f"({versions[0].number}) of dataset {a.dataset_id}.")
    return (a, b) if versions[0].number < versions[1].number else (b, a)


def _recall(labels: np.ndarray, predicted: np.ndarray) -> dict[str, float | None]:
    """{class: the share of its faces predicted as it}; None for a class without faces."""
    return {name: (float((predicted[labels == k] == k).mean()) if (labels == k).any() else None)
            for k, name in enumerate(CLASSES)}


def _run_side(run: TrainingRun, evaluation, version, labels: np.ndarray, predicted: np.ndarray) -> dict:
    return {
        "id": run.pk, "name": run.name, "version": version_line(version),
        "accuracy": (run.metrics or {}).get("accuracy"),
        "evaluated": int(len(evaluation.items)),
        "common_accuracy": float((predicted == labels).mean()) if len(labels) else None,
        "common_recall": _recall(labels, predicted),
    }


def compare_on_common_faces(runs: list[TrainingRun]) -> dict:
    """Two runs of one dataset on different versions, scored on the faces both evaluated against the newer
    version's labels (those its evaluation holds): each run's accuracy and per-class recall there, beside
    its own reported accuracy, with the versions between them.
    -> {dataset, older, newer, common_faces, relabeled_faces, class_counts, versions, changes, explanation}.
    NotComparable for other pairs; EvaluationMissing when a run kept no per-face evaluation."""
    older, newer = comparable_pair(runs)
    old_version, new_version = selectors.run_dataset_version(older), selectors.run_dataset_version(newer)
    old_eval, new_eval = evaluation_load(older), evaluation_load(newer)
    common, in_old, in_new = np.intersect1d(old_eval.items, new_eval.items, return_indices=True)
    labels = new_eval.labels[in_new].astype(np.int64)
    return {
        "dataset": {"id": newer.dataset_id, "name": newer.dataset.name},
        "older": _run_side(older, old_eval, old_version, labels, old_eval.predicted[in_old].astype(np.int64)),
        "newer": _run_side(newer, new_eval, new_version, labels, new_eval.predicted[in_new].astype(np.int64)),
        "common_faces": int(len(common)),
        "relabeled_faces": int((old_eval.labels[in_old] != new_eval.labels[in_new]).sum()),
        "class_counts": {name: int((labels == k).sum()) for k, name in enumerate(CLASSES)},
        "versions": versions_between(old_version, new_version),
        "changes": changes_since(old_version, new_version),
        "explanation": EXPLANATION.format(number=new_version.number),
    }


def run_page_versions(run: TrainingRun) -> dict:
    """What the run page says about the data: {version: the one it recorded, or None; newer: {number,
    since, changes} when its dataset has a newer version to train again on (a ready, undeleted dataset whose
    newest version holds other data than the run's), else None}."""
    from ferweb.datasets.versions import version_head
    from training_jobs.services import dataset_refusal

    recorded = run.dataset_version
    version = None if recorded is None else {**version_line(recorded), "short_hash": recorded.content_hash[:7]}
    trained, newest = selectors.run_dataset_version(run), version_head(run.dataset)
    newer = None
    if (trained is not None and newest is not None and newest.number > trained.number
            and newest.content_hash != trained.content_hash and not dataset_refusal(run.dataset)):
        newer = {"number": newest.number, "since": trained.number, "changes": changes_since(trained, newest)}
    return {"version": version, "newer": newer}


def compare_page_block(runs: list[TrainingRun]) -> dict | None:
    """The compare page's common-face block: the comparison with a row per class of the common faces,
    {"error": why} when a run kept no per-face evaluation, or None when the runs are not two of one
    dataset on different versions."""
    from training_jobs.evaluation_faces import EvaluationMissing

    try:
        data = compare_on_common_faces(runs)
    except NotComparable:
        return None
    except EvaluationMissing as exc:
        return {"error": str(exc)}
    older, newer = data["older"]["common_recall"], data["newer"]["common_recall"]
    data["per_class"] = [
        {"name": name, "faces": data["class_counts"][name], "older": older[name], "newer": newer[name],
         "points": None if older[name] is None else 100 * (newer[name] - older[name])}
        for name in CLASSES if data["class_counts"][name]
    ]
    return data
