"""ONNX export per the model contract (DESIGN.md), proven against PyTorch before it is handed out.

The exported graph maps `input` float32 [N, 1, 48, 48] in [0, 1] to `logits` float32 [N, 7]. Temperature
scaling and test-time flip averaging are folded into the graph, so the served logits are
exactly what evaluation measured and a stranger's softmax over them is calibrated.
"""
from __future__ import annotations

import io
import json
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from fercore.classes import CLASSES
from fercore.model_contract import contract_metadata, set_metadata

OPSET = 17
PARITY_ATOL = 1e-4


class ExportError(RuntimeError):
    """The exported model does not agree with PyTorch (or is not valid ONNX)."""


@dataclass
class ExportReport:
    max_abs_diff: float
    top1_agree: bool
    path: Path
    opset: int = OPSET


class ServingModel(nn.Module):
    """What gets exported: the network, optionally averaged with its mirror image, divided by T."""

    def __init__(self, model: nn.Module, temperature: float = 1.0, tta_flip: bool = False):
        super().__init__()
        self.model = model
        self.tta_flip = tta_flip
        self.register_buffer("inv_temperature", torch.tensor(1.0 / float(temperature), dtype=torch.float32))

    def forward(self, x):
        if self.tta_flip:
            n = x.shape[0]
            # One pass over original and mirrored faces together: cheaper than two at batch 1.
            both = self.model(torch.cat([x, torch.flip(x, dims=[3])], dim=0))
            logits = (both[:n] + both[n:]) * 0.5
        else:
            logits = self.model(x)
        return logits * self.inv_temperature


def _parity_batch(seed: int = 0, n: int = 8) -> np.ndarray:
    """Random noise plus smooth face-like blobs, so the check sees realistic activations too."""
    rng = np.random.default_rng(seed)
    noise = rng.random((n // 2, 1, 48, 48), dtype=np.float32)
    yy, xx = np.mgrid[0:48, 0:48].astype(np.float32)
    blobs = []
    for _ in range(n - n // 2):
        cx, cy, r = rng.uniform(18, 30), rng.uniform(18, 30), rng.uniform(12, 22)
        blobs.append(np.clip(1.2 - np.hypot(xx - cx, yy - cy) / r, 0, 1)[None])
    return np.concatenate([noise, np.stack(blobs).astype(np.float32)])


def export_onnx(model: nn.Module, path, *, architecture: str, version: str, metrics: dict | None = None,
                temperature: float = 1.0, tta_flip: bool = False, check_batch: np.ndarray | None = None) -> ExportReport:
    """Export, add the fer.* metadata (fercore.model_contract), run onnx.checker and compare ONNX Runtime with PyTorch.

    Raises ExportError (and removes the file) if the logits differ by 1e-4 or more anywhere or the
    top-1 class differs on the check batch.
    """
    import onnxruntime as ort

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    serving = ServingModel(model, temperature=temperature, tta_flip=tta_flip).cpu().eval()
    example = torch.zeros(2, 1, 48, 48)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter: works offline and is stable for these plain conv nets.
        torch.onnx.export(
            serving, (example,), buffer, dynamo=False, input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
            do_constant_folding=True)
    proto = onnx.load_from_string(buffer.getvalue())
    set_metadata(proto, contract_metadata(
        architecture=architecture, version=version, metrics=metrics,
        extra={"fer.temperature": repr(float(temperature)), "fer.tta_flip": json.dumps(bool(tta_flip))},
    ))
    proto.producer_name = "ferweb"
    onnx.checker.check_model(proto, full_check=True)
    path.write_bytes(proto.SerializeToString())

    batch = _parity_batch() if check_batch is None else np.asarray(check_batch, dtype=np.float32)
    with torch.no_grad():
        expected = serving(torch.from_numpy(batch)).numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"input": batch})[0]
    max_diff = float(np.abs(got - expected).max())
    # A face whose two best PyTorch logits are closer than the tolerance has no meaningful top-1.
    ranked = np.sort(expected, axis=1)
    tied = (ranked[:, -1] - ranked[:, -2]) < PARITY_ATOL
    top1 = bool(((got.argmax(1) == expected.argmax(1)) | tied).all())
    if got.shape != (len(batch), len(CLASSES)) or not max_diff < PARITY_ATOL or not top1:
        path.unlink(missing_ok=True)
        raise ExportError(f"ONNX Runtime disagrees with PyTorch: max |diff| {max_diff:.2e} (limit {PARITY_ATOL:g}), "
                          f"same top-1: {top1}, output shape {got.shape}")
    return ExportReport(max_abs_diff=max_diff, top1_agree=top1, path=path)


def onnx_latency_ms(path, batch: int = 1, threads: int = 2, runs: int = 200, warmup: int = 20) -> float:
    """Median wall time of one ONNX Runtime CPU call on a batch of `batch` faces, in milliseconds."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((batch, 1, 48, 48), dtype=np.float32)
    for _ in range(warmup):
        session.run(None, {"input": x})
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, {"input": x})
        times.append((time.perf_counter() - start) * 1000)
    return float(statistics.median(times))


def faces_per_second(path, batch: int = 256, threads: int = 2) -> float:
    """Batched ONNX Runtime CPU throughput: faces per second at the median call time."""
    return batch / (onnx_latency_ms(path, batch=batch, threads=threads, runs=20, warmup=2) / 1000)
