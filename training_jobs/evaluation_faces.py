"""The faces behind each cell of a run's confusion matrix, and sending them to labeling for review.

When a run evaluates its best checkpoint, the trainer hands back every evaluated face: its row,
true label, predicted class and probabilities (after the temperature, as the exported model gives
them). `evaluation_save` maps the rows to the dataset's items and keeps them in a small file,
runs/<id>/evaluation.npz:
    items      int64 [N]     DatasetItem ids
    labels     int8  [N]     true class (index into CLASSES)
    predicted  int8  [N]     the class the confusion matrix counted (argmax of the full-precision
                             probabilities: float16 ties could pick another)
    probs      float16 [N, C]
Counting (labels, predicted) gives back run.metrics["confusion_matrix"] exactly.

Runs that finished before this file existed have none: `EvaluationMissing`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.db import transaction

from fercore.classes import CLASSES

FILE_NAME = "evaluation.npz"
MAX_LISTED = 500  # faces one cell answers with at most


class EvaluationMissing(Exception):
    """The run kept no per-face evaluation (it finished before runs did, or it has not been evaluated)."""


class ActionRefused(Exception):
    """A request about evaluation faces that cannot be done; `code` is machine-readable, the message is for a
    person, `field` names the input it is about."""

    def __init__(self, code: str, message: str, *, field: str = ""):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


@dataclass
class Evaluation:
    items: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    probs: np.ndarray

    def confusion_matrix(self, num_classes: int = len(CLASSES)) -> list[list[int]]:
        cm = np.zeros((num_classes, num_classes), dtype=np.int64)
        np.add.at(cm, (self.labels.astype(np.int64), self.predicted.astype(np.int64)), 1)
        return cm.tolist()


def evaluation_path(run) -> Path:
    return run.workdir / FILE_NAME


def evaluation_save(*, run, evaluation: dict, item_ids: np.ndarray) -> Path:
    """Keep the trainer's evaluated faces (TrainResult.evaluation, whose `indices` are positions in the
    rows the run trained on) under the ids of the items those rows came from (`item_ids`, in the same
    order). Written to a temporary name first: a reader never sees half a file."""
    positions = np.asarray(evaluation["indices"], dtype=np.int64)
    path = evaluation_path(run)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{FILE_NAME}.partial")
    with open(partial, "wb") as handle:
        np.savez_compressed(
            handle,
            items=np.asarray(item_ids, dtype=np.int64)[positions],
            labels=np.asarray(evaluation["labels"]).astype(np.int8),
            predicted=np.asarray(evaluation["predicted"]).astype(np.int8),
            probs=np.asarray(evaluation["probs"]).astype(np.float16),
        )
    os.replace(partial, path)
    return path


def evaluation_load(run) -> Evaluation:
    """The run's evaluated faces; EvaluationMissing when it kept none."""
    path = evaluation_path(run)
    if not path.exists():
        raise EvaluationMissing(
            f"Run {run.pk} finished before runs kept the faces behind their confusion matrix, so its cells "
            "cannot list them. Train again (the same recipe on the same dataset) to get them.")
    with np.load(path) as data:
        return Evaluation(items=data["items"], labels=data["labels"], predicted=data["predicted"],
                          probs=data["probs"])


def class_index(name: str, field: str) -> int:
    if name not in CLASSES:
        raise ActionRefused("invalid", f"{field} must be one of {', '.join(CLASSES)}; got {name!r}.", field=field)
    return CLASSES.index(name)


def cell_faces(run, *, true: str, predicted: str, limit: int = 50) -> dict:
    """The evaluated faces of one confusion-matrix cell (true class `true`, predicted `predicted`), the most
    confident first (the predicted class's probability), with the items' names and thumbnails.
    -> {true, predicted, count, faces: [{item, index, source_name, label, excluded, probabilities, confidence,
    image}]}; `count` is the whole cell, `faces` at most `limit` of it."""
    from ferweb.datasets.models import DatasetItem

    t, p = class_index(true, "true"), class_index(predicted, "predicted")
    limit = max(1, min(int(limit), MAX_LISTED))
    evaluation = evaluation_load(run)
    members = np.flatnonzero((evaluation.labels == t) & (evaluation.predicted == p))
    confidence = evaluation.probs[members, p].astype(np.float32)
    order = members[np.lexsort((evaluation.items[members], -confidence))][:limit]  # ties: by item, stable
    ids = [int(i) for i in evaluation.items[order]]
    rows = {row["id"]: row for row in DatasetItem.objects.filter(pk__in=ids, dataset_id=run.dataset_id)
            .values("id", "index", "source_name", "label", "excluded")}
    faces = []
    for position, item in zip(order, ids):
        row = rows.get(item)
        probs = evaluation.probs[position].astype(np.float32)
        faces.append({
            "item": item,
            "index": row["index"] if row else None,
            "source_name": (row["source_name"] or f"face {row['index'] + 1}") if row else "",
            "label": CLASSES[row["label"]] if row else None,
            "excluded": bool(row["excluded"]) if row else None,
            "probabilities": {name: round(float(v), 4) for name, v in zip(CLASSES, probs)},
            "confidence": round(float(probs[p]), 4),
            "image": f"/api/datasets/{run.dataset_id}/items/{row['index']}.png" if row else "",
        })
    return {"true": true, "predicted": predicted, "count": int(len(members)), "faces": faces}


@transaction.atomic
def evaluation_faces_review(*, run, user, item_ids: list[int]) -> dict:
    """Send faces the run evaluated to labeling for a person to look at again: 1. check the items are among
    them; 2. copy them into a new labeling set owned by `user`, the run's prediction as each face's
    proposal. The dataset is not changed (relabel and exclude: POST /api/datasets/{id}/items/{item}/).
    -> {count, detail, labeling_set: {id, name, url}}."""
    from ferweb.datasets.models import DatasetItem
    from ferweb.labeling.services import labeling_set_from_items

    wanted = sorted({int(i) for i in item_ids})
    if not wanted:
        raise ActionRefused("invalid", "Choose at least one face.", field="items")
    evaluation = evaluation_load(run)
    kept = np.isin(evaluation.items, wanted)
    unknown = sorted(set(wanted) - {int(i) for i in evaluation.items[kept]})
    if unknown:
        raise ActionRefused("invalid", f"Run {run.pk} did not evaluate item(s) {', '.join(map(str, unknown[:10]))}.",
                            field="items")
    probabilities = {int(i): {c: float(v) for c, v in zip(CLASSES, evaluation.probs[k].astype(np.float32))}
                     for k, i in zip(np.flatnonzero(kept), evaluation.items[kept])}
    labeling_set = labeling_set_from_items(
        owner=user, items=DatasetItem.objects.filter(pk__in=wanted, dataset_id=run.dataset_id),
        name=f"Review of run {run.pk}", probabilities=probabilities, model_version=f"run {run.pk}")
    n = len(wanted)
    return {"count": n,
            "labeling_set": {"id": labeling_set.pk, "name": labeling_set.name, "url": f"/labeling/{labeling_set.pk}/"},
            "detail": f"{n} face{'' if n == 1 else 's'} sent to the labeling set \u201c{labeling_set.name}\u201d "
                      "for review."}
