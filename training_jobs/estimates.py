"""How long a training run takes: estimated before it starts, counted down while it runs.

Both rest on the training worker's measured speed (`Throughput`: training and evaluation images
per second of one architecture, batch size and precision on one device). A worker measures the
`quick` preset's combination when it first starts on a device, any other combination when an
estimate asks for it, and every run refreshes its own combination from its epochs. No torch here:
the web process estimates, the worker measures (training_jobs/ml/throughput.py).

A run's wall time, phase by phase (PHASES):
1. preparing_data: start the training process, read the faces, build the network (what earlier
   runs took, else a default);
2. training: each epoch's batches at the training rate and its validation pass at the evaluation
   rate (twice the faces with tta_flip); an upper bound, since early stopping may end it sooner;
3. evaluating: the validation faces (for the temperature) and the test faces once more;
4. occlusion_maps: `occlusion_per_class` faces of every class, one pass per square position;
5. exporting: the ONNX export, its parity check and latency measurement (earlier runs of the
   architecture, else a default from its size).
"""
from __future__ import annotations

import logging
import math
import os
import statistics
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import transaction

from fercore import catalogue
from training_jobs.models import Throughput, TrainingRun

logger = logging.getLogger(__name__)

PHASES = ("preparing_data", "training", "evaluating", "occlusion_maps", "exporting")
AFTER_TRAINING = ("evaluating", "occlusion_maps", "exporting")
COMPUTE_BOUND = ("evaluating", "occlusion_maps")  # these run at the network's speed, like training

# When nothing is measured yet: a slow, busy 2-core CPU. A training step costs about three
# forward passes plus augmentation; rates are these multiply-adds per second over the catalogue's
# multiply-adds per face.
DEFAULT_TRAIN_MACS_PER_S = 3e9
DEFAULT_EVAL_MACS_PER_S = 1.2e10
DEFAULT_PREPARE_S = 10.0  # start the training process (torch), read the faces, build the network
PREPARE_S_PER_FACE = 1e-4  # reading and splitting: 3.6 s for FER2013's 35,887 faces
DEFAULT_EXPORT_S = 3.0  # plus EXPORT_S_PER_MAC x multiply-adds per face: trace, parity check, latency
EXPORT_S_PER_MAC = 1.5e-8
EVALUATION_OVERHEAD_S = 1.0  # temperature fit, metrics, calibration
MEASURE_PENDING_S = 3600  # a requested measurement is not asked for again within this (seconds)
RECENT_RUNS = 10  # earlier runs whose phase timings are taken


# ---------------------------------------------------------------- the workload


@dataclass(frozen=True)
class Workload:
    """What a recipe asks of the worker on one dataset, counted in faces and batches."""

    epochs: int
    batches_per_epoch: int
    train_images_per_epoch: int
    val_faces: int
    test_faces: int
    passes: int  # forward passes per evaluated face: 2 with tta_flip
    occlusion_images: int  # occluded copies of faces, plus the faces themselves
    faces: int


def split_sizes(config: dict, split_counts: dict, num_items: int) -> tuple[int, int, int]:
    """(training, validation, test) faces as the trainer will split them (training_jobs.ml.data)."""
    from training_jobs.ml.data import split_role

    sizes = {"train": 0, "val": 0, "test": 0}
    for name, count in (split_counts or {}).items():
        sizes[split_role(name)] += int(count)
    if not any(sizes.values()):
        sizes["train"] = int(num_items)
    train, val, test = sizes["train"], sizes["val"], sizes["test"]
    if not val:
        val = max(1, round(train * float(config.get("validation_fraction", 0.1)))) if train > 1 else 0
        train -= val
    return train, val, test or val


def workload(config: dict, *, split_counts: dict, class_counts: dict, num_items: int) -> Workload:
    train, val, test = split_sizes(config, split_counts, num_items)
    batch = max(1, int(config["batch_size"]))
    batches = max(1, math.ceil(train / batch))
    if config.get("max_batches_per_epoch"):
        batches = min(batches, int(config["max_batches_per_epoch"]))
    classes = sum(1 for n in (class_counts or {}).values() if n) or 1
    patch = int(config.get("occlusion_patch", 8))
    stride = max(1, patch // 2)
    positions = ((48 - patch) // stride + 1) ** 2
    occluded = int(config.get("occlusion_per_class", 0)) * min(classes, 7)
    return Workload(
        epochs=int(config["epochs"]), batches_per_epoch=batches, train_images_per_epoch=min(batches * batch, train),
        val_faces=val, test_faces=test, passes=2 if config.get("tta_flip") else 1,
        occlusion_images=occluded * (positions + 1), faces=int(num_items),
    )


# ---------------------------------------------------------------- measured speeds


@dataclass(frozen=True)
class Rates:
    train_images_per_s: float
    eval_images_per_s: float
    measured: bool  # this very combination was measured on this device
    basis: str  # where the numbers come from, for people
    device: str = ""


def worker_device() -> str:
    """The training worker's device: the one measured last ("" before any measurement)."""
    return Throughput.objects.order_by("-measured_at", "-pk").values_list("device", flat=True).first() or ""


def _macs(architecture: str) -> int:
    return catalogue.get(architecture).macs


def _distance(row: Throughput, architecture: str, batch_size: int, bf16: bool) -> float:
    """How far a measured combination is from the one wanted: another batch size of the same network
    is nearer than another network."""
    batches = abs(math.log(row.batch_size / batch_size))
    precision = 0.1 * (row.bf16 != bf16)
    if row.architecture == architecture:
        return batches + precision
    return 2 + abs(math.log(_macs(row.architecture) / _macs(architecture))) + 0.5 * batches + precision


def _source(row: Throughput) -> str:
    return "by a benchmark" if row.source == "benchmark" else f"by {row.source}"


def rates_for(architecture: str, batch_size: int, bf16: bool, *, device: str | None = None) -> Rates:
    """The measured rates of this combination on the worker's device; else the nearest measured one
    scaled by multiply-adds; else a conservative guess from the network's size."""
    device = worker_device() if device is None else device
    rows = [row for row in Throughput.objects.filter(device=device) if row.architecture in catalogue.ARCHITECTURES]
    for row in rows:
        if (row.architecture, row.batch_size, row.bf16) == (architecture, batch_size, bf16):
            return Rates(row.train_images_per_s, row.eval_images_per_s, True, device=device, basis=(
                f"measured on {device}: {architecture} at batch {batch_size} trains {row.train_images_per_s:,.0f} "
                f"images/s (measured {_source(row)})"))
    if rows:
        near = min(rows, key=lambda row: _distance(row, architecture, batch_size, bf16))
        if near.architecture == architecture:
            return Rates(near.train_images_per_s, near.eval_images_per_s, False, device=device, basis=(
                f"approximate: {architecture} measured at batch {near.batch_size} at "
                f"{near.train_images_per_s:,.0f} images/s on {device}"))
        scale = _macs(near.architecture) / _macs(architecture)
        return Rates(near.train_images_per_s * scale, near.eval_images_per_s * scale, False, device=device, basis=(
            f"approximate: {near.architecture} measured at {near.train_images_per_s:,.0f} images/s on {device}, "
            f"scaled by multiply-adds"))
    macs = _macs(architecture)
    return Rates(DEFAULT_TRAIN_MACS_PER_S / macs, DEFAULT_EVAL_MACS_PER_S / macs, False, basis=(
        "a rough guess from the network's size: the training worker has not measured its speed yet"))


# ---------------------------------------------------------------- what earlier runs took


def past_phase_seconds(phase: str, *, architecture: str = "") -> float | None:
    """The median time the latest succeeded runs (of `architecture`, if given) spent in `phase`."""
    runs = TrainingRun.objects.filter(status=TrainingRun.Status.SUCCEEDED, metrics__has_key="phase_seconds")
    if architecture:
        runs = runs.filter(architecture=architecture)
    timings = runs.order_by("-finished_at").values_list("metrics__phase_seconds", flat=True)[:RECENT_RUNS]
    seconds = [t[phase] for t in timings if isinstance(t, dict) and isinstance(t.get(phase), (int, float))]
    return statistics.median(seconds) if seconds else None


# ---------------------------------------------------------------- the estimate


@dataclass
class Estimate:
    phases: dict[str, float]
    basis: str
    measured: bool
    epochs: int = 1
    batches_per_epoch: int = 1
    train_seconds_per_epoch: float = 0.0  # the batches of one epoch
    val_seconds_per_epoch: float = 0.0  # its validation pass
    rates: Rates | None = field(default=None, repr=False)

    @property
    def seconds(self) -> float:
        return sum(self.phases.values())

    def as_dict(self) -> dict:
        """The API's answer (POST /api/runs/estimate/)."""
        return {"estimated_seconds": round(self.seconds, 1),
                "phases": {phase: round(self.phases[phase], 1) for phase in PHASES},
                "basis": self.basis, "measured": self.measured}


def estimate(config: dict, work: Workload, rates: Rates, *, prepare_s: float | None = None,
             export_s: float | None = None, measuring: bool = False) -> Estimate:
    """The arithmetic of the module docstring. `prepare_s` and `export_s`: what earlier runs took
    (None: the defaults); `measuring`: the exact combination is being measured now (the basis says so)."""
    train_epoch = work.train_images_per_epoch / rates.train_images_per_s
    val_epoch = work.val_faces * work.passes / rates.eval_images_per_s
    macs = _macs(config["architecture"])
    phases = {
        "preparing_data": prepare_s if prepare_s is not None else DEFAULT_PREPARE_S + PREPARE_S_PER_FACE * work.faces,
        "training": work.epochs * (train_epoch + val_epoch),
        "evaluating": EVALUATION_OVERHEAD_S + (work.val_faces + work.test_faces) * work.passes / rates.eval_images_per_s,
        "occlusion_maps": work.occlusion_images / rates.eval_images_per_s,
        "exporting": export_s if export_s is not None else DEFAULT_EXPORT_S + EXPORT_S_PER_MAC * macs,
    }
    basis = rates.basis
    if measuring and not rates.measured:
        basis += f"; measuring {config['architecture']} at batch {config['batch_size']} now"
    patience = int(config.get("early_stopping_patience") or 0)
    if patience and patience < work.epochs:
        basis += "; an upper bound, since early stopping may end it sooner"
    return Estimate(phases=phases, basis=basis[0].upper() + basis[1:] + ".", measured=rates.measured,
                    epochs=work.epochs, batches_per_epoch=work.batches_per_epoch, train_seconds_per_epoch=train_epoch,
                    val_seconds_per_epoch=val_epoch, rates=rates)


def estimate_for(config: dict, *, split_counts: dict, class_counts: dict, num_items: int,
                 measure: bool = False) -> Estimate:
    """A validated recipe on a dataset of these counts, from this worker's measurements and earlier
    runs. `measure`: ask the worker to measure the combination when it is not measured yet."""
    architecture, batch_size, bf16 = config["architecture"], int(config["batch_size"]), bool(config.get("bf16"))
    rates = rates_for(architecture, batch_size, bf16)
    measuring = not rates.measured and measure and measurement_request(architecture, batch_size, bf16)
    work = workload(config, split_counts=split_counts, class_counts=class_counts, num_items=num_items)
    return estimate(config, work, rates, prepare_s=past_phase_seconds("preparing_data"),
                    export_s=past_phase_seconds("exporting", architecture=architecture), measuring=measuring)


def estimate_for_run(run: TrainingRun) -> Estimate:
    dataset = run.dataset
    return estimate_for(run.config, split_counts=dataset.split_counts, class_counts=dataset.class_counts,
                        num_items=dataset.num_items)


# ---------------------------------------------------------------- measuring


def measuring_enabled() -> bool:
    return settings.FERWEB_MEASURE_THROUGHPUT


def _pending_key(architecture: str, batch_size: int, bf16: bool) -> str:
    return f"throughput-measure:{architecture}:{batch_size}:{int(bf16)}"


def measurement_request(architecture: str, batch_size: int, bf16: bool) -> bool:
    """Ask a training worker to measure this combination, once: True while a measurement is pending."""
    if not measuring_enabled():
        return False
    key = _pending_key(architecture, batch_size, bf16)
    try:
        if cache.add(key, True, timeout=MEASURE_PENDING_S):
            from training_jobs.tasks import measure_throughput

            transaction.on_commit(lambda: measure_throughput.delay(architecture, batch_size, bf16))
        return True
    except Exception:  # noqa: BLE001 - an estimate is answered even when the broker is away
        logger.warning("could not ask for a throughput measurement of %s at batch %s", architecture, batch_size,
                       exc_info=True)
        return False


@transaction.atomic
def throughput_store(*, device: str, architecture: str, batch_size: int, bf16: bool, train_images_per_s: float,
                     eval_images_per_s: float, source: str) -> Throughput:
    row, _ = Throughput.objects.update_or_create(
        device=device[:200], architecture=architecture, batch_size=batch_size, bf16=bf16,
        defaults={"train_images_per_s": train_images_per_s, "eval_images_per_s": eval_images_per_s,
                  "source": source[:64]},
    )
    return row


def throughput_measure(*, architecture: str, batch_size: int, bf16: bool, num_threads: int = 0,
                       budget_s: float | None = None) -> Throughput | None:
    """The training worker measures a combination on its own device (in a child process) and stores
    it as source "benchmark"; a device that has it already is not measured again. Returns the row
    (None when the measurement failed)."""
    from training_jobs.ml import throughput

    known = list(Throughput.objects.filter(architecture=architecture, batch_size=batch_size, bf16=bf16)
                 .values_list("device", flat=True))
    try:
        result = throughput.measure_isolated(architecture, batch_size=batch_size, bf16=bf16, num_threads=num_threads,
                                             budget_s=budget_s or throughput.BUDGET_S, known_devices=known)
    except Exception:  # noqa: BLE001 - a failed measurement leaves the estimates approximate, nothing more
        logger.exception("measuring %s at batch %s failed", architecture, batch_size)
        return None
    finally:
        cache.delete(_pending_key(architecture, batch_size, bf16))
    lookup = {"device": result["device"], "architecture": architecture, "batch_size": batch_size, "bf16": bf16}
    if result.get("skipped"):
        return Throughput.objects.filter(**lookup).first()
    logger.info("measured %s at batch %s on %s: %.0f training, %.0f evaluation images/s", architecture, batch_size,
                result["device"], result["train_images_per_s"], result["eval_images_per_s"])
    return throughput_store(**lookup, train_images_per_s=result["train_images_per_s"],
                            eval_images_per_s=result["eval_images_per_s"], source="benchmark")


QUICK_FALLBACK = {"architecture": "fast_resnet", "batch_size": 128, "bf16": True, "num_threads": 0}


def quick_combination() -> dict:
    """The `quick` preset's architecture, batch size, precision and threads: what a worker measures first."""
    from training_jobs import services

    try:
        recipe = services.recipe_from("quick", {})
    except Exception:  # noqa: BLE001 - no such preset: measure FERWeb's quick-trial network anyway
        return dict(QUICK_FALLBACK)
    return {key: recipe.get(key, default) for key, default in QUICK_FALLBACK.items()}


def throughput_measure_at_worker_start() -> Throughput | None:
    """A training worker that starts on a device without a measurement of the quick preset measures it."""
    if not measuring_enabled():
        return None
    quick = quick_combination()
    return throughput_measure(architecture=quick["architecture"], batch_size=int(quick["batch_size"]),
                              bf16=bool(quick["bf16"]), num_threads=int(quick["num_threads"] or 0))


def throughput_from_epochs(config: dict, *, device: str, history: list[dict], source: str) -> Throughput | None:
    """Training with recipe `config` (a run, or a cross-validation fold) refreshes its combination's row
    from its epochs (the median of their rates), so that estimates follow what training really does on
    this device, not only what was measured when the worker started. Epochs of a frozen backbone,
    training with a teacher, and training on fewer threads than the machine has measure something
    else: left out. `source` says where the figures came from ("run 12")."""
    threads = int(config.get("num_threads") or 0)
    if not device or config.get("teacher_checkpoint") or (device.startswith("cpu") and 0 < threads < os.cpu_count()):
        return None
    epochs = [h for h in history if h.get("train_images_per_s") and h.get("val_images_per_s")
              and not h.get("frozen_backbone")]
    if not epochs or config.get("architecture") not in catalogue.ARCHITECTURES:
        return None
    return throughput_store(
        device=device, architecture=config["architecture"], batch_size=int(config["batch_size"]),
        bf16=bool(config.get("bf16")), source=source,
        train_images_per_s=statistics.median(h["train_images_per_s"] for h in epochs),
        eval_images_per_s=statistics.median(h["val_images_per_s"] for h in epochs),
    )


# ---------------------------------------------------------------- while it runs


class RunClock:
    """A running run's phase, percent and seconds left, from its estimate and what it measures.

    The phases share the percent by their estimated time. Training advances batch by batch; the
    other phases by their elapsed time against their estimate, never past 95% of their share, so
    the percent reaches 100 only when the run ends. The seconds left count the batches and
    validation passes to come at the speed measured since the first batches, and the phases after
    training at their estimate, scaled by how much slower or faster than estimated the run trains.
    A phase that overruns its estimate shows a few seconds left, never zero, until it ends.
    """

    LAST_SHARE = 0.95  # of a phase's share of the percent, until the next phase starts

    def __init__(self, plan: Estimate, *, now: float, phase: str = "preparing_data"):
        self.plan = plan
        self.phase, self.phase_started = phase, now
        self.durations: dict[str, float] = {}  # of the phases that have ended
        self.epochs, self.batches = plan.epochs, plan.batches_per_epoch
        self.batches_done = 0  # of the whole run, earlier attempts included
        self.epochs_done = 0
        self.train_time, self.train_batches = 0.0, 0  # between batch events of this attempt, within epochs
        self.last_batch: tuple[float, int, int] | None = None  # (time, batches done, epoch)
        self.val_seconds: float | None = None  # the last validation pass, measured
        self.percent_shown = 0.0

    # -- what happened

    def enter(self, phase: str, now: float) -> None:
        if phase and phase != self.phase:
            self.durations[self.phase] = self.durations.get(self.phase, 0.0) + now - self.phase_started
            self.phase, self.phase_started = phase, now

    def batch(self, event: dict, now: float) -> None:
        self.enter("training", now)
        self.epochs, self.batches = int(event["epochs"]), int(event["batches"])
        epoch = int(event["epoch"])
        self.batches_done = (epoch - 1) * self.batches + int(event["batch"])
        self.epochs_done = max(self.epochs_done, epoch - 1)
        if self.last_batch is not None and self.last_batch[2] == epoch and self.batches_done > self.last_batch[1]:
            self.train_time += now - self.last_batch[0]
            self.train_batches += self.batches_done - self.last_batch[1]
        self.last_batch = (now, self.batches_done, epoch)

    def epoch(self, event: dict, now: float) -> None:
        self.epochs_done = int(event["epoch"])
        self.epochs = int(event.get("epochs") or self.epochs)
        self.batches_done = self.epochs_done * self.batches
        if event.get("val_seconds") is not None:
            self.val_seconds = float(event["val_seconds"])
        self.last_batch = None  # the validation pass lies between this epoch's batches and the next one's

    # -- where it stands

    def seconds_per_batch(self) -> float | None:
        return self.train_time / self.train_batches if self.train_batches else None

    def pace(self) -> float:
        """Measured over estimated time per batch (1 until measured), within reason."""
        measured = self.seconds_per_batch()
        planned = self.plan.train_seconds_per_epoch / max(1, self.plan.batches_per_epoch)
        if measured is None or planned <= 0:
            return 1.0
        return min(5.0, max(0.2, measured / planned))

    def planned(self, phase: str) -> float:
        seconds = self.plan.phases.get(phase, 0.0)
        return seconds * self.pace() if phase in COMPUTE_BOUND else seconds

    def eta(self, now: float) -> float:
        order = PHASES.index(self.phase) if self.phase in PHASES else 0
        later = sum(self.planned(p) for p in PHASES[order + 1:])
        if self.phase == "training":
            per_batch = self.seconds_per_batch() or self.plan.train_seconds_per_epoch / max(1, self.batches)
            per_validation = self.val_seconds if self.val_seconds is not None else (
                self.plan.val_seconds_per_epoch * self.pace())
            batches_left = max(0, self.epochs * self.batches - self.batches_done)
            return batches_left * per_batch + max(0, self.epochs - self.epochs_done) * per_validation + later
        planned = self.planned(self.phase)
        left = max(planned - (now - self.phase_started), 1.0, 0.05 * planned)
        return left + later

    def percent(self, now: float) -> float:
        shares = {p: self.plan.phases.get(p, 0.0) for p in PHASES}
        total = sum(shares.values()) or 1.0
        order = PHASES.index(self.phase) if self.phase in PHASES else 0
        before = sum(shares[p] for p in PHASES[:order])
        if self.phase == "training":
            done = min(1.0, self.batches_done / max(1, self.epochs * self.batches))
        else:
            planned = self.planned(self.phase)
            done = min(self.LAST_SHARE, (now - self.phase_started) / planned) if planned > 0 else self.LAST_SHARE
        percent = min(99.9, 100 * (before + shares[self.phase] * done) / total) if self.phase in PHASES else 0.0
        self.percent_shown = max(self.percent_shown, percent)
        return self.percent_shown

    def progress(self, now: float) -> dict:
        """The run JSON's `progress`: {percent, phase, eta_seconds}."""
        return {"percent": round(self.percent(now), 2), "phase": self.phase, "eta_seconds": round(self.eta(now), 1)}

    def phase_seconds(self, now: float) -> dict[str, float]:
        """How long each phase took so far (the current one until now)."""
        seconds = dict(self.durations)
        seconds[self.phase] = seconds.get(self.phase, 0.0) + now - self.phase_started
        return {phase: round(value, 2) for phase, value in seconds.items()}
