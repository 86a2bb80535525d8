"""Faces whose given label is probably wrong, by confident learning (cleanlab).

Input: each face's given label and out-of-sample predicted probabilities (from a model that never
trained on that face, or from k-fold cross-validation). cleanlab estimates how often each class is
mistaken for each other class from those probabilities and flags the faces that fall off the
diagonal of that estimate, so the threshold is per class and learned from the data rather than
typed by hand. Every face also gets a label-quality score; the ranking is by it.

Framework-free: numpy and cleanlab only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fercore.classes import CLASSES

RANKED_BY = "self_confidence"  # quality = the predicted probability of the given label


@dataclass(frozen=True)
class LabelIssue:
    index: int  # row in the arrays the finder was given
    given: int  # the label the face carries
    suggested: int  # the most probable other class
    score: float  # 0-1: how likely the given label is wrong (1 - its label quality)


@dataclass(frozen=True)
class Findings:
    issues: list[LabelIssue]  # flagged faces, most likely wrong first
    scores: np.ndarray  # float [N]: 1 - label quality of every face (higher: more suspect)

    def ranking(self) -> np.ndarray:
        """Every face's index, most suspect first (flagged or not)."""
        return np.argsort(-self.scores, kind="stable")


def check_inputs(labels: np.ndarray, pred_probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels, dtype=np.int64)
    pred_probs = np.asarray(pred_probs, dtype=np.float64)
    if pred_probs.ndim != 2 or pred_probs.shape != (len(labels), len(CLASSES)):
        raise ValueError(f"expected probabilities [N, {len(CLASSES)}] for N={len(labels)} labels, "
                         f"got {pred_probs.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASSES)):
        raise ValueError(f"labels must be 0..{len(CLASSES) - 1} ({', '.join(CLASSES)})")
    if not np.all(np.isfinite(pred_probs)) or np.any(pred_probs < 0):
        raise ValueError("probabilities must be finite and non-negative")
    # Rows must sum to 1 for cleanlab; a model's softmax does up to rounding.
    pred_probs = pred_probs / np.clip(pred_probs.sum(axis=1, keepdims=True), 1e-12, None)
    return labels, pred_probs


def find_label_issues(labels: np.ndarray, pred_probs: np.ndarray) -> Findings:
    """Flag and rank the faces whose given label is probably wrong.

    1. score every face by the probability its given label gets (cleanlab's self-confidence);
    2. flag faces by confident learning (prune by noise rate), ranked most suspect first;
    3. suggest, for each flagged face, the most probable class other than the given one.
    """
    from cleanlab.filter import find_label_issues as cleanlab_find
    from cleanlab.rank import get_label_quality_scores

    labels, pred_probs = check_inputs(labels, pred_probs)
    if len(labels) == 0:
        return Findings(issues=[], scores=np.zeros(0))
    scores = 1.0 - get_label_quality_scores(labels, pred_probs, method=RANKED_BY)
    flagged = cleanlab_find(labels, pred_probs, return_indices_ranked_by=RANKED_BY,
                            min_examples_per_class=0, n_jobs=1)
    others = pred_probs.copy()
    others[np.arange(len(labels)), labels] = -1.0
    suggested = others.argmax(axis=1)
    issues = [LabelIssue(index=int(i), given=int(labels[i]), suggested=int(suggested[i]), score=float(scores[i]))
              for i in flagged]
    return Findings(issues=issues, scores=scores)


def flip_labels(labels: np.ndarray, share: float, *, seed: int, classes: int = len(CLASSES)) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, indices flipped): a seeded `share` of the faces moved to another class, uniformly
    among the other classes. For measuring the finder on known errors."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=np.int64)
    flipped = np.sort(rng.choice(len(labels), size=int(round(share * len(labels))), replace=False))
    noisy = labels.copy()
    noisy[flipped] = (labels[flipped] + rng.integers(1, classes, size=len(flipped))) % classes
    return noisy, flipped


def recall_at(findings: Findings, flipped: np.ndarray, share: float) -> tuple[int, int]:
    """(flipped faces among the top `share` of the ranking, size of that top)."""
    top = findings.ranking()[: int(round(share * len(findings.scores)))]
    return int(np.isin(top, flipped).sum()), len(top)
