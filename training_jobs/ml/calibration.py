"""Temperature scaling: one scalar that makes the softmax confidences match the accuracy.

Fitted on the validation split's logits, then folded into the exported model (logits / T), so
the served probabilities are calibrated without any code on the serving side.
"""
from __future__ import annotations

import numpy as np

from training_jobs.ml.metrics import expected_calibration_error, softmax


def fit_temperature(logits, labels, *, low: float = 0.05, high: float = 20.0) -> float:
    """Temperature T > 0 minimising the validation NLL of softmax(logits / T) (Guo et al., 2017).

    The NLL is convex in 1/T, so a golden-section search over log T finds the optimum.
    """
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0

    def nll(log_t):
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(log_norm - z[np.arange(len(labels)), labels]))

    a, b = np.log(low), np.log(high)
    ratio = (np.sqrt(5) - 1) / 2
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = nll(c), nll(d)
    for _ in range(80):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = nll(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = nll(d)
    return float(np.exp((a + b) / 2))


def calibration_report(logits, labels, temperature: float) -> dict:
    """ECE and NLL before and after dividing the logits by the temperature."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    idx = np.arange(len(labels))

    def nll(p):
        return float(-np.mean(np.log(np.clip(p[idx, labels], 1e-12, 1.0)))) if len(labels) else 0.0

    before, after = softmax(logits), softmax(logits, temperature)
    return {
        "temperature": float(temperature),
        "ece_before": expected_calibration_error(labels, before),
        "ece_after": expected_calibration_error(labels, after),
        "nll_before": nll(before),
        "nll_after": nll(after),
    }
