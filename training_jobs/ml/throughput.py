"""A short measurement of how fast this machine trains and evaluates one network: what duration
estimates are made of. No Django; torch only inside the functions.

`measure(architecture, batch_size=..., bf16=...)` times a few full training steps and a few
evaluation batches with the benchmark's functions (benchmark.py), within a time budget, on the
device a run would use. `measure_isolated(...)` does the same in a fresh process, so the training
worker that asks never loads torch or changes its thread count; it skips the work when this
machine's device is one already measured.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

BUDGET_S = 8.0  # seconds of timed work in all (training, then evaluation); warm-up not counted
MAX_BATCHES = 50  # of each kind: a fast network on a GPU stops here, well within the budget


def cpu_name() -> str:
    """The CPU's model name as the kernel reports it; the platform's name elsewhere."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "unknown CPU"


def describe_device(kind: str, threads: int = 0, gpu_name: str = "") -> str:
    """How throughputs name a device: 'cpu: <CPU model name>, <n> threads' or 'cuda: <GPU name>'."""
    if kind == "cuda":
        return f"cuda: {gpu_name or 'GPU'}"
    return f"cpu: {cpu_name()}, {threads or os.cpu_count() or 1} threads"


def this_device(device: str = "auto", num_threads: int = 0) -> tuple[object, str]:
    """(torch device, its description) for a run with this recipe's `device` and `num_threads`."""
    import torch

    from training_jobs.ml.trainer import set_threads

    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda"), describe_device("cuda", gpu_name=torch.cuda.get_device_name(0))
    return torch.device("cpu"), describe_device("cpu", threads=set_threads(num_threads))


def measure(architecture: str, *, batch_size: int, bf16: bool = False, device: str = "auto", num_threads: int = 0,
            budget_s: float = BUDGET_S) -> dict:
    """{device, architecture, batch_size, bf16, train_images_per_s, eval_images_per_s, train_steps,
    eval_batches, seconds}: the benchmark's training steps and evaluation batches of this network on
    this machine, seven tenths of the budget for training and the rest for evaluation."""
    from training_jobs.ml.benchmark import eval_throughput, train_throughput

    began = time.perf_counter()
    target, name = this_device(device, num_threads)
    train, steps = train_throughput(architecture, batches=MAX_BATCHES, batch_size=batch_size, bf16=bf16, warmup=1,
                                    max_seconds=0.7 * budget_s, device=target.type)
    evaluation, batches = eval_throughput(architecture, batches=MAX_BATCHES, bf16=bf16, warmup=1,
                                          max_seconds=0.3 * budget_s, device=target.type)
    return {
        "device": name, "architecture": architecture, "batch_size": batch_size, "bf16": bool(bf16),
        "train_images_per_s": round(train, 2), "eval_images_per_s": round(evaluation, 2),
        "train_steps": steps, "eval_batches": batches, "seconds": round(time.perf_counter() - began, 2),
    }


def _measure_unless_known(kwargs: dict, known_devices: list[str]) -> dict:
    _, name = this_device(kwargs.get("device", "auto"), kwargs.get("num_threads", 0))
    if name in known_devices:
        return {"device": name, "skipped": True}
    return measure(**kwargs)


def measure_isolated(architecture: str, *, batch_size: int, bf16: bool = False, device: str = "auto",
                     num_threads: int = 0, budget_s: float = BUDGET_S, known_devices: list[str] = ()) -> dict:
    """`measure` in a fresh process. When this machine's device is one of `known_devices` it measures
    nothing and answers {device, skipped: True}."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    kwargs = {"architecture": architecture, "batch_size": batch_size, "bf16": bf16, "device": device,
              "num_threads": num_threads, "budget_s": budget_s}
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_measure_unless_known, kwargs, list(known_devices)).result()
