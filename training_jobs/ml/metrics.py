"""Evaluation of predicted probabilities against true labels, in NumPy only.

Definitions follow scikit-learn (tests compare against it): precision/recall/F1 are 0 where
undefined, ROC AUC is one-vs-rest on the full curve, macro AUC is the mean over classes that have
both positives and negatives, micro AUC pools every (face, class) pair.
"""
from __future__ import annotations

import numpy as np

from fercore.classes import CLASSES

ROC_POINTS = 100
ECE_BINS = 15


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    return np.bincount(y_true * num_classes + y_pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def roc_curve(positive: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Full ROC curve (fpr, tpr) with one point per distinct score, starting at (0, 0)."""
    order = np.argsort(-scores, kind="mergesort")
    scores, positive = scores[order], positive[order]
    # Last position of each run of equal scores: ties move together.
    distinct = np.flatnonzero(np.diff(scores)) if len(scores) else np.array([], dtype=int)
    ends = np.r_[distinct, len(scores) - 1] if len(scores) else distinct
    tps = np.cumsum(positive)[ends]
    fps = (ends + 1) - tps
    tps, fps = np.r_[0, tps], np.r_[0, fps]
    p, n = tps[-1], fps[-1]
    tpr = tps / p if p else np.full(tps.shape, np.nan)
    fpr = fps / n if n else np.full(fps.shape, np.nan)
    return fpr, tpr


def auc(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def downsample_curve(fpr: np.ndarray, tpr: np.ndarray, points: int = ROC_POINTS) -> tuple[list, list]:
    """At most `points` points for storage and charts, spread evenly along the curve, ends kept."""
    if len(fpr) <= points:
        keep = np.arange(len(fpr))
    else:
        # Even in arc length, so steep parts keep their shape as well as flat ones.
        step = np.hypot(np.diff(fpr), np.diff(tpr))
        arc = np.r_[0, np.cumsum(step)]
        targets = np.linspace(0, arc[-1], points)
        keep = np.unique(np.r_[0, np.searchsorted(arc, targets).clip(0, len(fpr) - 1), len(fpr) - 1])
    return [round(float(v), 5) for v in fpr[keep]], [round(float(v), 5) for v in tpr[keep]]


def expected_calibration_error(y_true: np.ndarray, probs: np.ndarray, bins: int = ECE_BINS) -> float:
    """Weighted mean |accuracy - confidence| over equal-width confidence bins of the top-1 prediction."""
    if len(y_true) == 0:
        return 0.0
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y_true).astype(np.float64)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.mean() * abs(correct[members].mean() - confidence[members].mean())
    return float(total)


def _safe_div(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def evaluate(y_true, probs, class_names=CLASSES) -> dict:
    """Full evaluation of probabilities [N, C] (rows sum to 1) against labels [N].

    Returns accuracy, macro_f1, weighted_f1, per_class {class: precision, recall, f1, specificity,
    support, auc}, confusion_matrix (counts), confusion_matrix_normalized (rows sum to 1), roc
    {class: {fpr, tpr, auc}} with curves of at most 100 points, macro_auc, micro_auc, ece, nll
    and num_samples. Everything is plain Python (JSON-ready); undefined AUCs are None.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    n, num_classes = probs.shape
    if len(y_true) != n:
        raise ValueError(f"{len(y_true)} labels for {n} predictions")
    y_pred = probs.argmax(axis=1)
    cm = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(cm).astype(np.float64)
    support = cm.sum(axis=1)
    predicted = cm.sum(axis=0)
    fp, fn = predicted - tp, support - tp
    tn = n - tp - fp - fn
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    specificity = _safe_div(tn, tn + fp)

    roc, aucs = {}, []
    onehot = np.eye(num_classes, dtype=np.int64)[y_true] if n else np.zeros((0, num_classes), dtype=np.int64)
    for c, name in enumerate(class_names):
        positives = int(onehot[:, c].sum())
        if 0 < positives < n:
            fpr, tpr = roc_curve(onehot[:, c], probs[:, c])
            value = auc(fpr, tpr)
            aucs.append(value)
            small_fpr, small_tpr = downsample_curve(fpr, tpr)
            roc[name] = {"fpr": small_fpr, "tpr": small_tpr, "auc": value}
        else:
            roc[name] = {"fpr": [], "tpr": [], "auc": None}
    micro_auc = None
    if n and 0 < onehot.sum() < onehot.size:
        fpr, tpr = roc_curve(onehot.ravel(), probs.ravel())
        micro_auc = auc(fpr, tpr)

    row_sums = cm.sum(axis=1, keepdims=True)
    normalized = np.divide(cm, row_sums, out=np.zeros(cm.shape), where=row_sums > 0)
    eps = 1e-12
    nll = float(-np.mean(np.log(np.clip(probs[np.arange(n), y_true], eps, 1.0)))) if n else 0.0
    return {
        "num_samples": int(n),
        "accuracy": float(tp.sum() / n) if n else 0.0,
        "macro_f1": float(f1.mean()),
        "weighted_f1": float((f1 * support).sum() / n) if n else 0.0,
        "per_class": {
            name: {
                "precision": float(precision[c]), "recall": float(recall[c]), "f1": float(f1[c]),
                "specificity": float(specificity[c]), "support": int(support[c]), "auc": roc[name]["auc"],
            }
            for c, name in enumerate(class_names)
        },
        "confusion_matrix": cm.astype(int).tolist(),
        "confusion_matrix_normalized": [[round(float(v), 5) for v in row] for row in normalized],
        "roc": roc,
        "macro_auc": float(np.mean(aucs)) if aucs else None,
        "micro_auc": micro_auc,
        "ece": expected_calibration_error(y_true, probs),
        "nll": nll,
        "classes": list(class_names),
    }


def summary(metrics: dict) -> dict:
    """The metrics without the curves: small enough for ONNX metadata and list views."""
    out = {k: v for k, v in metrics.items() if k not in ("roc", "confusion_matrix_normalized")}
    out["per_class_auc"] = {name: curve["auc"] for name, curve in metrics.get("roc", {}).items()}
    return out


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
