"""Training throughput and serving latency of every architecture on this machine.

    python -m training_jobs.ml.benchmark [--batches 20] [--bf16] [--arch NAME ...] [--json]

For each architecture: trainable parameters; training throughput (images/s) of full steps
(augmentation, forward, class-weighted loss, backward, Nadam update) at batch 64, measured over
`--batches` batches after warm-up; seconds per FER2013 epoch extrapolated from it to 28,709
faces (the training set; validation passes not included); and the median ONNX Runtime latency
of the exported model at batch 1 (and 64) with 2 threads. Faces are random pixels: the speed
of these networks does not depend on the content. The numbers depend on what else runs.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from training_jobs.ml.architectures import ARCHITECTURES, build_model, count_parameters
from training_jobs.ml.augment import AugmentParams, augment_batch
from training_jobs.ml.export import export_onnx, onnx_latency_ms
from training_jobs.ml.trainer import EVAL_BATCH, cpu_supports_bf16, set_threads

FER2013_TRAIN = 28_709


def autocast_for(device: torch.device, bf16: bool):
    """The trainer's precision: float16 autocast on CUDA, bf16 on a CPU that has it when asked, else float32."""
    if device.type == "cuda":
        return lambda: torch.autocast("cuda", dtype=torch.float16)
    if bf16 and cpu_supports_bf16():
        return lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    return lambda: torch.autocast("cpu", enabled=False)


def _timed(step, device: torch.device, *, batches: int, warmup: int, max_seconds: float, min_batches: int = 1
           ) -> tuple[float, int]:
    """(seconds, batches timed) of `step()` after `warmup` untimed calls; stops after max_seconds
    once `min_batches` are timed."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    start, timed = time.perf_counter(), 0
    while timed < batches:
        step()
        timed += 1
        if device.type == "cuda":
            torch.cuda.synchronize()
        if timed >= min_batches and time.perf_counter() - start > max_seconds:
            break
    return time.perf_counter() - start, timed


def train_throughput(name: str, *, batches: int, batch_size: int = 64, bf16: bool = False, warmup: int = 3,
                     max_seconds: float = 120.0, device: str = "cpu") -> tuple[float, int]:
    """Images per second of full training steps; stops early after max_seconds (returns batches timed)."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = build_model(name).to(device).train()
    optimizer = torch.optim.NAdam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    faces = torch.randint(0, 256, (batch_size, 48, 48), dtype=torch.uint8, generator=gen).to(device)
    labels = torch.randint(0, 7, (batch_size,), generator=gen).to(device)
    weights = torch.ones(7, device=device)
    params = AugmentParams()
    autocast = autocast_for(device, bf16)

    def step():
        x = augment_batch(faces.unsqueeze(1).float().div(255), params, gen)
        with autocast():
            loss = F.cross_entropy(model(x).float(), labels, weight=weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds, timed = _timed(step, device, batches=batches, warmup=warmup, max_seconds=max_seconds)
    return timed * batch_size / seconds, timed


def eval_throughput(name: str, *, batches: int, batch_size: int = EVAL_BATCH, bf16: bool = False, warmup: int = 1,
                    max_seconds: float = 30.0, device: str = "cpu") -> tuple[float, int]:
    """Images per second of evaluation (forward passes without gradients, as validation and test
    run); stops early after max_seconds (returns batches timed)."""
    device = torch.device(device)
    torch.manual_seed(0)
    model = build_model(name).to(device).eval()
    x = torch.rand((batch_size, 1, 48, 48), generator=torch.Generator().manual_seed(0)).to(device)
    autocast = autocast_for(device, bf16)

    @torch.no_grad()
    def step():
        with autocast():
            model(x).float()

    seconds, timed = _timed(step, device, batches=batches, warmup=warmup, max_seconds=max_seconds)
    return timed * batch_size / seconds, timed


def run(names, *, batches: int, bf16: bool, latency_threads: int = 2) -> list[dict]:
    rows = []
    threads = set_threads(0)
    for name in names:
        row = {"architecture": name, "params": count_parameters(build_model(name)), "threads": threads}
        ips, timed = train_throughput(name, batches=batches)
        row.update(images_per_s=round(ips, 1), batches_timed=timed,
                   seconds_per_fer2013_epoch=round(FER2013_TRAIN / ips, 1))
        if bf16:
            ips16, _ = train_throughput(name, batches=batches, bf16=True)
            row.update(bf16_images_per_s=round(ips16, 1), bf16_seconds_per_fer2013_epoch=round(FER2013_TRAIN / ips16, 1))
        with tempfile.TemporaryDirectory() as tmp:
            model = build_model(name).eval()
            path = export_onnx(model, Path(tmp) / f"{name}.onnx", architecture=name, version="benchmark").path
            row["onnx_ms_batch1"] = round(onnx_latency_ms(path, batch=1, threads=latency_threads), 3)
            row["onnx_ms_batch64"] = round(onnx_latency_ms(path, batch=64, threads=latency_threads, runs=20,
                                                           warmup=3), 2)
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    bf16 = any("bf16_images_per_s" in r for r in rows)
    head = ["architecture", "trainable params", "train images/s", "s per FER2013 epoch"]
    if bf16:
        head += ["bf16 images/s", "bf16 s/epoch"]
    head += ["ONNX ms (batch 1)", "ONNX ms (batch 64)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["architecture"], f"{r['params']:,}", f"{r['images_per_s']:.0f}", f"{r['seconds_per_fer2013_epoch']:.0f}"]
        if bf16:
            cells += [f"{r.get('bf16_images_per_s', float('nan')):.0f}",
                      f"{r.get('bf16_seconds_per_fer2013_epoch', float('nan')):.0f}"]
        cells += [f"{r['onnx_ms_batch1']:.2f}", f"{r['onnx_ms_batch64']:.1f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training_jobs.ml.benchmark", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", nargs="*", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    parser.add_argument("--batches", type=int, default=20, help="timed training batches of 64 per architecture")
    parser.add_argument("--bf16", action="store_true", help="also time bfloat16 autocast (CPUs with bf16 only)")
    parser.add_argument("--json", action="store_true", help="print JSON rows instead of a table")
    return parser


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    if args.bf16 and not cpu_supports_bf16():
        print("this CPU has no bf16 instructions; timing float32 only", file=sys.stderr)
        args.bf16 = False
    load_before = os.getloadavg()[0]
    rows = run(args.arch, batches=args.batches, bf16=args.bf16)
    load_after = os.getloadavg()[0]
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"CPU: {os.cpu_count()} cores, torch {torch.__version__}; training throughput at batch 64 over "
              f"{args.batches} batches (fewer if a model needs over 2 minutes), extrapolated to {FER2013_TRAIN:,} "
              f"faces per epoch. Load average before/after: {load_before:.1f}/{load_after:.1f} (other work on the "
              f"same cores slows every number down).")
        print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
