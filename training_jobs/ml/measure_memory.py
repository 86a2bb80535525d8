"""Measure the peak memory of real training steps, to calibrate `training_jobs.ml.memory`.

    python -m training_jobs.ml.measure_memory [--architectures a b] [--batches 32 128] [--json out.json]

Every measurement is a fresh Python process (so nothing of an earlier one stays in its heap) that
1. records its resident memory after importing torch and the trainer (the runtime);
2. either trains (`train`: `trainer.train` on random faces, one epoch of `--steps` full batches,
   tiny validation and test splits, no occlusion maps), or evaluates (`eval`: one no-grad
   forward pass of 256 faces, the trainer's evaluation batch);
3. reports the kernel's high-water mark of its resident memory (`ru_maxrss`).
Each point is the highest peak of `--repeats` processes (the allocator makes them differ by a few
percent). `memory.py` records the points and fits the bytes per training face through them; the
bytes per dataset face are the slope between two dataset sizes. `--check` compares the recorded
estimate with fresh measurements at other batch sizes.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile

FACE_BYTES = 48 * 48


def rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure_once(mode: str, architecture: str, batch_size: int, faces: int, steps: int, optimizer: str,
                 threads: int) -> dict:
    """One measurement in this (fresh) process: see the module docstring."""
    import numpy as np
    import torch

    from training_jobs.ml import trainer
    from training_jobs.ml.architectures import build_model, count_parameters
    from training_jobs.ml.config import TrainConfig
    from training_jobs.ml.data import TrainData

    torch.set_num_threads(threads)
    runtime = rss_bytes()
    rng = np.random.default_rng(0)
    if mode == "eval":
        model = build_model(architecture)
        trainer.predict_logits(model, rng.integers(0, 256, (trainer.EVAL_BATCH, 48, 48), dtype=np.uint8))
        return {"runtime": runtime, "peak": peak_rss_bytes(), "params": count_parameters(model)}
    held = 16  # validation and test faces each: small, so that training dominates the peak
    n = max(faces, batch_size * steps) + 2 * held
    data = TrainData(
        pixels=rng.integers(0, 256, (n, 48, 48), dtype=np.uint8),
        labels=rng.integers(0, 7, n),
        splits=np.array(["val"] * held + ["test"] * held + ["train"] * (n - 2 * held)),
    )
    config = TrainConfig(architecture=architecture, optimizer=optimizer, batch_size=batch_size, epochs=1,
                         max_batches_per_epoch=steps, num_threads=threads, occlusion_per_class=0,
                         temperature_scaling=False, early_stopping_patience=0, seed=0)
    with tempfile.TemporaryDirectory() as workdir:
        result = trainer.train(config, data, workdir=workdir, resume=False)
    return {"runtime": runtime, "peak": peak_rss_bytes(), "params": result.param_count, "faces": n}


def measure(mode: str, architecture: str, batch_size: int = 0, faces: int = 0, steps: int = 3,
            optimizer: str = "nadam", threads: int = 2) -> dict:
    """measure_once in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-m", "training_jobs.ml.measure_memory", "--once", mode, architecture, str(batch_size),
         str(faces), str(steps), optimizer, str(threads)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def calibrate(architecture: str, batches: list[int], faces: int, steps: int, threads: int, repeats: int) -> dict:
    """Peak bytes at each batch size (the highest of `repeats` fresh processes), and of evaluation."""
    peaks, runtime, params = {}, 0, 0
    for batch in batches:
        runs = [measure("train", architecture, batch, faces, steps, threads=threads) for _ in range(repeats)]
        peaks[batch] = max(run["peak"] for run in runs)
        runtime, params = max(run["runtime"] for run in runs), runs[0]["params"]
    evaluation = max(measure("eval", architecture, threads=threads)["peak"] for _ in range(repeats))
    return {"params": params, "runtime": runtime, "train_peaks": peaks, "eval_peak_256": evaluation}


def check(architectures: list[str], batches: list[int], faces: int, steps: int, threads: int) -> int:
    """Measured peak vs the recorded estimate (which includes memory.MARGIN) at other batch sizes."""
    from training_jobs.ml.memory import estimate_bytes

    for name in architectures:
        for batch in batches:
            measured = measure("train", name, batch, faces, steps, threads=threads)
            estimate = estimate_bytes(architecture=name, batch_size=batch, faces=measured["faces"])
            print(f"{name} batch {batch}: measured {measured['peak'] / 2**20:,.0f} MiB, estimated "
                  f"{estimate / 2**20:,.0f} MiB ({estimate / measured['peak'] - 1:+.0%})", flush=True)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training_jobs.ml.measure_memory", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--once", nargs=7, metavar="ARG", help=argparse.SUPPRESS)
    parser.add_argument("--architectures", nargs="*", default=None)
    parser.add_argument("--batches", nargs="+", type=int, default=(32, 128, 256),
                        help="batch sizes to measure (the slope is fitted through them)")
    parser.add_argument("--repeats", type=int, default=2, help="fresh processes per point; the highest peak counts")
    parser.add_argument("--faces", type=int, default=512, help="training faces (at least batch x steps)")
    parser.add_argument("--steps", type=int, default=3, help="training batches per measurement")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-slope", nargs=2, type=int, default=None, metavar=("N1", "N2"),
                        help="also measure the bytes per dataset face between two dataset sizes")
    parser.add_argument("--check", nargs="*", type=int, default=None, metavar="BATCH",
                        help="instead: measure these batch sizes and compare with memory.estimate_bytes")
    parser.add_argument("--json", default="", help="write the results here too")
    args = parser.parse_args(argv)
    if args.once:
        mode, arch, batch, faces, steps, optimizer, threads = args.once
        print(json.dumps(measure_once(mode, arch, int(batch), int(faces), int(steps), optimizer, int(threads))))
        return 0
    from training_jobs.ml.architectures import ARCHITECTURES

    if args.check is not None:
        return check(args.architectures or list(ARCHITECTURES), args.check, args.faces, args.steps, args.threads)
    results = {"cpu": platform.processor() or platform.machine(), "threads": args.threads, "architectures": {}}
    for name in args.architectures or list(ARCHITECTURES):
        results["architectures"][name] = row = calibrate(name, list(args.batches), args.faces, args.steps,
                                                         args.threads, args.repeats)
        print(name, json.dumps(row), flush=True)
    if args.data_slope:
        n1, n2 = args.data_slope
        a, b = (measure("train", "light_residual", 32, n, 1, threads=args.threads) for n in (n1, n2))
        results["data_bytes_per_face"] = round((b["peak"] - a["peak"]) / (b["faces"] - a["faces"]))
        print("data bytes per face", results["data_bytes_per_face"], flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
