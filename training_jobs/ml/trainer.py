"""The training loop: a function of its config and data, with events, cancellation and resume.

`train(config, data, workdir=...)` is what the Celery task, the `train` management command and
`python -m training_jobs.ml.trainer` (no Django) all call. It runs these steps, each a function below:
1. split the data (dataset's own validation/test splits, else stratified and seeded) and fingerprint
   it and the code (`Provenance`: dataset SHA-256, code version), once per run;
2. build the model (optionally from a checkpoint), optimizer, schedule, weighted loss, weight
   average and teacher (`build_training`);
3. resume from workdir/last.pt when it continues this run (`checkpoint_to_resume`, `restore`):
   how a run survives a killed worker; last.pt of the same recipe on other data is refused;
4. train epoch by epoch: `train_one_epoch` on augmented batches (`run.batch` events), `evaluate`
   on the validation split (`run.epoch` events), last.pt every epoch and best.pt on every better
   validation accuracy (`save_checkpoint`, one format: checkpoint.py), stopping early;
5. reload best.pt, fit a temperature on the validation logits, evaluate on the test split
   (`evaluate_held_out`).
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from training_jobs.ml import CLASSES
from training_jobs.ml.architectures import (
    ARCHITECTURES, build_model, count_parameters, extract_state_dict, freeze_backbone_statistics,
    load_init_checkpoint, set_backbone_trainable,
)
from training_jobs.ml.augment import AugmentParams, augment_batch, mix_batch
from training_jobs.ml.calibration import calibration_report, fit_temperature
from training_jobs.ml.checkpoint import (
    CheckpointError, Provenance, check_same_data, load_checkpoint, rng_state, save_checkpoint, set_rng_state,
)
from training_jobs.ml.config import ConfigError, TrainConfig
from training_jobs.ml.data import DataSplits, TrainData, class_counts, load_dataset_file, split_data
from training_jobs.ml.metrics import evaluate as classification_metrics, softmax
from training_jobs.ml.occlusion import occlusion_maps, pick_faces_per_class

LAST, BEST = "last.pt", "best.pt"  # in the run's workdir
BATCH_EVENT_INTERVAL_S = 0.25  # at most ~4 batch events a second
EVAL_BATCH = 256


class TrainingCancelled(Exception):
    """should_stop() said so; last.pt holds the last finished epoch."""


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict]
    metrics: dict
    wall_time_s: float
    param_count: int
    best_epoch: int
    best_val_accuracy: float
    test_split_name: str
    epochs_run: int
    stopped_early: bool
    temperature: float = 1.0
    splits: dict = field(default_factory=dict)
    device: str = "cpu"
    resumed_from_epoch: int = 0
    notes: list[str] = field(default_factory=list)
    # [{index, label, face (48x48 uint8 as lists), base_prob, predicted, patch, stride, grid, map}]
    occlusion: list[dict] = field(default_factory=list)
    provenance: dict = field(default_factory=dict)  # dataset_sha256, code_version, torch_version
    # The evaluated faces one by one, as the confusion matrix counted them: {indices: int64 [N] (rows of
    # the data, splits.test), labels: int64 [N], predicted: int64 [N], probs: float32 [N, C] after the
    # temperature, as the exported model gives them}.
    evaluation: dict = field(default_factory=dict)


# ---------------------------------------------------------------- helpers

def pick_device(config: TrainConfig) -> torch.device:
    if config.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError({"device": "cuda was requested but no CUDA device is available; choose auto or cpu"})
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        return torch.device("cuda")
    return torch.device("cpu")


def cpu_supports_bf16() -> bool:
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def set_threads(num_threads: int) -> int:
    """0 means every core; more threads than cores only slow training down, so never more."""
    cores = os.cpu_count() or 1
    threads = min(num_threads, cores) if num_threads else cores
    torch.set_num_threads(threads)
    return threads


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    else:
        if torch.are_deterministic_algorithms_enabled():  # a previous run in this worker turned it on
            torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True


def class_weights(labels: np.ndarray) -> torch.Tensor:
    """Inverse frequency, N / (C * n_c) (mean weight 1 over the faces); absent classes get 0."""
    counts = class_counts(labels).astype(np.float64)
    weights = np.divide(len(labels), len(CLASSES) * counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.tensor(weights, dtype=torch.float32)


def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    lr, wd = config.learning_rate, config.weight_decay
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=config.momentum, weight_decay=wd, nesterov=config.momentum > 0)
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd)
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, momentum=config.momentum, weight_decay=wd)
    if config.optimizer == "nadam":
        return torch.optim.NAdam(params, lr=lr, betas=(0.9, 0.999), weight_decay=wd)
    raise ConfigError({"optimizer": f"{config.optimizer!r} is not one of sgd, adam, adamw, rmsprop, nadam"})


class Schedule:
    """One object for the four schedules: per-batch `step_batch`, per-epoch `step_epoch(val_acc)`."""

    def __init__(self, config: TrainConfig, optimizer, steps_per_epoch: int):
        self.config, self.optimizer = config, optimizer
        self.total = max(1, config.epochs * steps_per_epoch)
        self.warmup = config.warmup_epochs * steps_per_epoch
        self.base_lr = config.learning_rate
        self.step = 0
        self.plateau = None
        if config.scheduler == "plateau":
            self.plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, mode="max", factor=config.plateau_factor, patience=config.plateau_patience,
                min_lr=config.min_lr)
        elif config.scheduler == "onecycle":
            self._set(self._onecycle(0))
        elif self.warmup:
            self._set(self._value(0))

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _set(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def _onecycle(self, step: int) -> float:
        # Warm up for 30% of the steps from lr/25, then cosine down to lr/1e4 (Smith's one-cycle).
        peak, start, end = self.base_lr, self.base_lr / 25, max(self.config.min_lr, self.base_lr / 1e4)
        rise = max(1, int(0.3 * self.total))
        if step < rise:
            return start + (peak - start) * (1 - math.cos(math.pi * step / rise)) / 2
        t = min(1.0, (step - rise) / max(1, self.total - rise))
        return end + (peak - end) * (1 + math.cos(math.pi * t)) / 2

    def _value(self, step: int) -> float:
        if self.warmup and step < self.warmup:
            return self.base_lr * (step + 1) / self.warmup
        if self.config.scheduler == "cosine":
            t = min(1.0, (step - self.warmup) / max(1, self.total - self.warmup))
            return self.config.min_lr + (self.base_lr - self.config.min_lr) * (1 + math.cos(math.pi * t)) / 2
        return self.base_lr

    def step_batch(self) -> None:
        self.step += 1
        if self.config.scheduler == "onecycle":
            self._set(self._onecycle(self.step))
        elif self.config.scheduler == "cosine" or (self.warmup and self.step <= self.warmup):
            self._set(self._value(self.step))

    def step_epoch(self, val_accuracy: float, epoch: int) -> None:
        if self.plateau is not None and epoch >= self.config.warmup_epochs:
            self.plateau.step(val_accuracy)

    def state_dict(self) -> dict:
        return {"step": self.step, "plateau": self.plateau.state_dict() if self.plateau else None}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        if self.plateau is not None and state.get("plateau"):
            self.plateau.load_state_dict(state["plateau"])


class WeightAverage:
    """Exponential moving average of a model's weights and BN statistics, kept in a shadow copy.

    The decay ramps up as (1 + n) / (10 + n) over the first updates, so short runs still average
    recent weights rather than the initial ones.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for shadow, current in zip(self.model.state_dict().values(), model.state_dict().values()):
            if shadow.dtype.is_floating_point:
                shadow.mul_(d).add_(current.detach(), alpha=1 - d)
            else:
                shadow.copy_(current)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = state["updates"]


# A teacher is called with the batch's training-face indices and the augmented batch, and
# returns the logits to distil from.

class CheckpointTeacher:
    """A frozen PyTorch model that sees the same augmented batch as the student."""

    def __init__(self, model: nn.Module):
        self.model = model

    @torch.no_grad()
    def __call__(self, idx, x):
        return self.model(x).float()


class TableTeacher:
    """Logits computed once per training face, un-augmented: distillation then costs no forward
    pass per batch, which is what makes it affordable on a CPU (an exported model's teacher)."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits

    def __call__(self, idx, x):
        return self.logits[idx]


def load_teacher(config: TrainConfig, device: torch.device, train_pixels: torch.Tensor):
    """A best.pt of a FERWeb run (run on every batch), or one or more exported .onnx models (run
    once; several, separated by commas, teach as an ensemble: their logits are averaged)."""
    paths = teacher_paths(config.teacher_checkpoint)
    for path in paths:
        if not Path(path).exists():
            raise ConfigError({"teacher_checkpoint": f"{path} does not exist"})
    if all(Path(path).suffix == ".onnx" for path in paths):
        if config.mixup_alpha or config.cutmix_alpha:
            # Its logits are for whole faces; a mixed face has no row in the table.
            raise ConfigError({"teacher_checkpoint": "an .onnx teacher cannot be combined with mixup or cutmix; "
                                                     "use a best.pt teacher or turn mixing off"})
        logits = torch.stack([onnx_teacher_logits(path, train_pixels) for path in paths]).mean(0)
        return TableTeacher(logits.to(device))
    if len(paths) > 1:
        raise ConfigError({"teacher_checkpoint": "an ensemble of teachers must be exported .onnx models"})
    try:
        checkpoint = load_checkpoint(paths[0])
    except CheckpointError:
        checkpoint = {}
    architecture = checkpoint.get("architecture")
    if architecture not in ARCHITECTURES:
        raise ConfigError({"teacher_checkpoint": "the checkpoint does not say which architecture it holds (one "
                                                 f"of {', '.join(ARCHITECTURES)}); use a best.pt of a FERWeb run "
                                                 "or an exported .onnx model"})
    teacher = build_model(architecture)
    teacher.load_state_dict(extract_state_dict(checkpoint))
    teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return CheckpointTeacher(teacher)


def teacher_paths(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def onnx_teacher_logits(path: str, pixels_u8: torch.Tensor) -> torch.Tensor:
    """Logits [N, 7] of an exported model (FERWeb's ONNX contract) for uint8 faces [N, 48, 48]."""
    from inference.engine import ModelUnavailable, faces_logits, load_model

    try:
        model = load_model(Path(path), threads=0)
    except ModelUnavailable as exc:
        raise ConfigError({"teacher_checkpoint": f"cannot load {Path(path).name} as an ONNX model: {exc}"}) from None
    inputs, outputs = model.session.get_inputs(), model.session.get_outputs()
    if len(inputs) != 1 or list(inputs[0].shape[1:]) != [1, 48, 48] or outputs[0].shape[-1] != len(CLASSES):
        raise ConfigError({"teacher_checkpoint": f"{Path(path).name} does not take [N, 1, 48, 48] faces and "
                                                 f"return {len(CLASSES)} logits"})
    return torch.from_numpy(faces_logits(model, pixels_u8.cpu().numpy(), EVAL_BATCH).astype(np.float32))


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher || student) on temperature-softened outputs, scaled by T^2 (Hinton et al., 2015)."""
    return F.kl_div(F.log_softmax(student_logits / temperature, dim=1), F.log_softmax(teacher_logits / temperature, dim=1),
                    log_target=True, reduction="batchmean") * temperature ** 2


def to_input(pixels_u8: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 48, 48] -> float [N, 1, 48, 48] in [0, 1] (inference.preprocess.to_model_input)."""
    return pixels_u8.unsqueeze(1).float().div_(255.0)


@torch.no_grad()
def predict_logits(model: nn.Module, pixels: np.ndarray, *, device=None, tta_flip: bool = False,
                   batch_size: int = EVAL_BATCH, autocast=None) -> np.ndarray:
    """Logits [N, 7] for uint8 faces [N, 48, 48]; with tta_flip the mean with the mirrored faces."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    faces = torch.from_numpy(np.ascontiguousarray(pixels))
    for start in range(0, len(faces), batch_size):
        x = to_input(faces[start:start + batch_size]).to(device)
        with autocast() if autocast else contextlib.nullcontext():
            logits = model(x).float()
            if tta_flip:
                logits = (logits + model(torch.flip(x, dims=[3])).float()) / 2
        out.append(logits.cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(CLASSES)), dtype=np.float32)


# Fields that may change between a run's attempts without invalidating its checkpoint.
_RESUMABLE_CHANGES = {"num_threads", "device", "bf16", "deterministic"}


def _same_recipe(saved: dict, config: TrainConfig) -> bool:
    current = config.to_dict()
    return all(saved.get(k) == v for k, v in current.items() if k not in _RESUMABLE_CHANGES)


# ---------------------------------------------------------------- the steps

@dataclass
class TrainingSetup:
    """What a run trains with (step 2); last.pt saves its states and a resume restores them."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: Schedule
    scaler: torch.amp.GradScaler
    autocast: Callable[[], contextlib.AbstractContextManager]
    augment: AugmentParams
    class_weights: torch.Tensor | None = None
    ema: WeightAverage | None = None
    teacher: Callable | None = None  # (training-face indices, augmented batch) -> logits

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and saved as best.pt: the weight average when one is kept."""
        return self.ema.model if self.ema is not None else self.model

    def resume_state(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else None,
                "ema": self.ema.state_dict() if self.ema is not None else None}

    def load_resume_state(self, checkpoint: dict) -> None:
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.schedule.load_state_dict(checkpoint["schedule"])
        if checkpoint.get("scaler"):
            self.scaler.load_state_dict(checkpoint["scaler"])
        if self.ema is not None and checkpoint.get("ema"):
            self.ema.load_state_dict(checkpoint["ema"])


@dataclass
class LoopState:
    """Where the epoch loop stands (step 4): saved in last.pt, restored on resume."""

    epoch: int = 0  # epochs finished
    history: list[dict] = field(default_factory=list)  # their run.epoch events
    best_val_accuracy: float = -1.0
    best_epoch: int = 0
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    wall_time_s: float = 0.0  # of the attempts before this one

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> LoopState:
        return cls(**{name: checkpoint.get(name, default) for name, default in asdict(cls()).items()})

    def end_epoch(self, val_accuracy: float, patience: int) -> bool:
        """Count a finished epoch; True when its validation accuracy is the best so far. After
        `patience` epochs without a better one (0: never), the run stops early."""
        self.epoch += 1
        improved = val_accuracy > self.best_val_accuracy
        if improved:
            self.best_val_accuracy, self.best_epoch, self.epochs_without_improvement = val_accuracy, self.epoch, 0
        else:
            self.epochs_without_improvement += 1
        if patience and self.epochs_without_improvement >= patience:
            self.stopped_early = True
        return improved


def training_tensors(data: TrainData, splits: DataSplits, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The training faces (uint8) and labels as tensors, on the GPU when training there."""
    pixels, labels = torch.from_numpy(data.pixels[splits.train]), torch.from_numpy(data.labels[splits.train])
    if device.type == "cuda":
        pixels, labels = pixels.to(device), labels.to(device)
    return pixels, labels


def steps_per_epoch(config: TrainConfig, n_train: int) -> int:
    steps = math.ceil(n_train / config.batch_size)
    return min(steps, config.max_batches_per_epoch) if config.max_batches_per_epoch else steps


def backbone_frozen(config: TrainConfig, epoch: int) -> bool:
    return epoch < config.freeze_backbone_epochs


def checkpoint_to_resume(path: Path, config: TrainConfig, provenance: Provenance, notes: list[str]) -> dict | None:
    """Step 3: last.pt when it continues this run, else None (start from scratch).

    A last.pt of another recipe, or of a format this code cannot read, is left for a fresh start
    (with a note). One of the same recipe but other data is refused (DatasetChanged): resuming would
    silently train the rest of the run on different faces.
    """
    if not path.exists():
        return None
    try:
        checkpoint = load_checkpoint(path, trusted=True)  # the run's own workdir
    except CheckpointError as exc:
        notes.append(f"{path.name} could not be resumed ({exc}); started from scratch")
        return None
    if not _same_recipe(checkpoint.get("config") or {}, config):
        notes.append(f"{path.name} was written with another recipe; started from scratch")
        return None
    check_same_data(checkpoint, provenance, path.name)
    if checkpoint["dataset_sha256"] is None:
        notes.append(f"{path.name} predates dataset hashes: resumed without checking that the data is the same")
    return checkpoint


def build_network(config: TrainConfig, device: torch.device, notes: list[str], *, fresh: bool) -> nn.Module:
    """The architecture, initialised from `init_checkpoint` when a fresh run names one."""
    model = build_model(config.architecture)
    if fresh and config.init_checkpoint:
        try:
            report = load_init_checkpoint(model, config.init_checkpoint)
        except FileNotFoundError:
            raise ConfigError({"init_checkpoint": f"{config.init_checkpoint} does not exist"}) from None
        except (ValueError, RuntimeError) as exc:
            raise ConfigError({"init_checkpoint": f"cannot start from this checkpoint: {exc}"}) from None
        notes.append(f"initialised from {Path(config.init_checkpoint).name}: {report.summary()}")
    model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


def mixed_precision(config: TrainConfig, device: torch.device, notes: list[str]):
    """(gradient scaler, autocast factory): float16 with loss scaling on CUDA, bf16 on a CPU that
    has the instructions for it when asked, else float32."""
    scaler = torch.amp.GradScaler("cuda", enabled=device.type == "cuda")
    if device.type == "cuda":
        return scaler, lambda: torch.autocast("cuda", dtype=torch.float16)
    if config.bf16 and cpu_supports_bf16():
        return scaler, lambda: torch.autocast("cpu", dtype=torch.bfloat16)
    if config.bf16:
        notes.append("bf16 was asked for but this CPU has no bf16 instructions; trained in float32")
    return scaler, contextlib.nullcontext


def build_training(config: TrainConfig, device: torch.device, train_pixels: torch.Tensor, train_labels: np.ndarray,
                   steps: int, notes: list[str], *, fresh: bool = True) -> TrainingSetup:
    """Step 2: network, teacher, weight average, optimizer, schedule, loss weights, precision and
    augmentation. `fresh`: a new run, not a resume (which brings its own weights)."""
    model = build_network(config, device, notes, fresh=fresh)
    teacher = load_teacher(config, device, train_pixels) if config.teacher_checkpoint else None
    ema = WeightAverage(model, config.ema_decay) if config.ema_decay > 0 else None
    optimizer = make_optimizer(config, model.parameters())
    schedule = Schedule(config, optimizer, steps)
    weights = class_weights(train_labels).to(device) if config.class_weighting else None
    scaler, autocast = mixed_precision(config, device, notes)
    return TrainingSetup(model=model, optimizer=optimizer, schedule=schedule, scaler=scaler, autocast=autocast,
                         augment=AugmentParams.from_config(config), class_weights=weights, ema=ema, teacher=teacher)


def restore(setup: TrainingSetup, checkpoint: dict) -> LoopState:
    """Step 3: the states from last.pt, and the RNGs last, so that the next epoch draws exactly
    what it would have drawn had the run not stopped."""
    setup.load_resume_state(checkpoint)
    set_rng_state(checkpoint["rng"])
    return LoopState.from_checkpoint(checkpoint)


class BatchEvents:
    """An epoch's `run.batch` events: at most one per BATCH_EVENT_INTERVAL_S plus the epoch's last
    batch, each with the images per second since the one before."""

    def __init__(self, emit: Callable[[dict], None], config: TrainConfig, epoch: int, steps: int):
        self.emit, self.epochs, self.epoch, self.steps = emit, config.epochs, epoch, steps
        self.last_event, self.images, self.window_start = 0.0, 0, time.monotonic()

    def batch_done(self, batch: int, images: int) -> None:
        self.images += images
        now = time.monotonic()
        if now - self.last_event < BATCH_EVENT_INTERVAL_S and batch != self.steps - 1:
            return
        done = self.epoch + (batch + 1) / self.steps  # epochs
        self.emit({"type": "run.batch", "epoch": self.epoch + 1, "epochs": self.epochs, "batch": batch + 1,
                   "batches": self.steps, "progress": round(100 * done / self.epochs, 2),
                   "images_per_s": round(self.images / max(now - self.window_start, 1e-6), 1)})
        self.last_event, self.images, self.window_start = now, 0, now


def training_batch(setup: TrainingSetup, config: TrainConfig, faces_u8: torch.Tensor, labels: torch.Tensor,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 faces and their labels -> the augmented (and mixed) input and its soft targets."""
    x = augment_batch(to_input(faces_u8.to(setup.device, non_blocking=True)), setup.augment, generator)
    target = F.one_hot(labels, len(CLASSES)).float()
    x, target = mix_batch(x, target, mixup_alpha=config.mixup_alpha, cutmix_alpha=config.cutmix_alpha,
                          generator=generator)
    if setup.device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, target


def train_step(setup: TrainingSetup, config: TrainConfig, x: torch.Tensor, target: torch.Tensor,
               idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimizer step (weighted, smoothed cross-entropy, plus distillation from the teacher);
    then the per-batch schedule and the weight average. -> (logits, loss)."""
    with setup.autocast():
        logits = setup.model(x)
        loss = F.cross_entropy(logits.float(), target, weight=setup.class_weights,
                               label_smoothing=config.label_smoothing)
        if setup.teacher is not None:
            loss = (1 - config.distill_weight) * loss + config.distill_weight * distillation_loss(
                logits.float(), setup.teacher(idx, x), config.distill_temperature)
    setup.optimizer.zero_grad(set_to_none=True)
    setup.scaler.scale(loss).backward()
    setup.scaler.step(setup.optimizer)
    setup.scaler.update()
    setup.schedule.step_batch()
    if setup.ema is not None:
        setup.ema.update(setup.model)
    return logits, loss


def train_one_epoch(setup: TrainingSetup, config: TrainConfig, pixels: torch.Tensor, labels: torch.Tensor, *,
                    epoch: int, steps: int, emit: Callable[[dict], None] | None = None,
                    stop: Callable[[], bool] | None = None) -> tuple[float, float]:
    """Epoch `epoch` (0-based): `steps` shuffled batches of the training faces, augmented and mixed.
    Returns (mean loss, accuracy) over the faces as trained on. Raises TrainingCancelled when
    stop() says so, which it is asked before every batch."""
    model, device = setup.model, setup.device
    frozen = backbone_frozen(config, epoch)
    set_backbone_trainable(model, not frozen)
    model.train()
    if frozen:
        freeze_backbone_statistics(model)
    # Per-epoch generators: the order and the augmentation of epoch k are the same after a resume.
    gen = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    order = torch.randperm(len(labels), generator=gen)
    if device.type == "cuda":
        order = order.to(device)
    events = BatchEvents(emit or (lambda event: None), config, epoch, steps)
    seen, correct, loss_sum = 0, 0, 0.0
    for batch in range(steps):
        if stop is not None and stop():
            raise TrainingCancelled(f"cancelled during epoch {epoch + 1}")
        idx = order[batch * config.batch_size:(batch + 1) * config.batch_size]
        y = labels[idx].to(device, non_blocking=True)
        x, target = training_batch(setup, config, pixels[idx], y, gen)
        logits, loss = train_step(setup, config, x, target, idx)
        seen += len(y)
        loss_sum += float(loss.detach()) * len(y)
        correct += int((logits.detach().argmax(1) == y).sum())
        events.batch_done(batch, len(y))
    return loss_sum / max(seen, 1), correct / max(seen, 1)


def evaluate(model: nn.Module, pixels: np.ndarray, labels: np.ndarray, *, tta_flip: bool = False,
             autocast=None) -> tuple[float, float]:
    """Validation: (cross-entropy, accuracy) of the model on uint8 faces [N, 48, 48] and their labels."""
    logits = predict_logits(model, pixels, tta_flip=tta_flip, autocast=autocast)
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(np.asarray(labels, dtype=np.int64))))
    return loss, float((logits.argmax(1) == labels).mean())


def epoch_event(config: TrainConfig, state: LoopState, epoch_seconds: list[float], *, train: tuple[float, float],
                val: tuple[float, float], lr: float, improved: bool, frozen: bool, speed: dict | None = None) -> dict:
    """The `run.epoch` event (and history entry) of the epoch that `state` has just counted; `speed`
    adds how long its training and validation took and at how many images per second."""
    remaining = 0 if state.stopped_early else config.epochs - state.epoch
    return {**(speed or {}),
        "type": "run.epoch", "epoch": state.epoch, "epochs": config.epochs,
        "train_loss": round(train[0], 5), "train_accuracy": round(train[1], 5),
        "val_loss": round(val[0], 5), "val_accuracy": round(val[1], 5), "lr": lr,
        "seconds": round(epoch_seconds[-1], 2), "eta_seconds": round(float(np.mean(epoch_seconds)) * remaining, 1),
        "best_val_accuracy": round(state.best_val_accuracy, 5), "best_epoch": state.best_epoch, "improved": improved,
        "frozen_backbone": frozen, "progress": round(100 * state.epoch / config.epochs, 2),
    }


def epoch_speed(*, train_seconds: float, train_images: int, val_seconds: float, val_images: int) -> dict:
    """Seconds and images per second of an epoch's training and of its validation (images that went
    through the network: twice the faces with tta_flip)."""
    return {"train_seconds": round(train_seconds, 3), "val_seconds": round(val_seconds, 3),
            "train_images_per_s": round(train_images / max(train_seconds, 1e-6), 1),
            "val_images_per_s": round(val_images / max(val_seconds, 1e-6), 1)}


def device_description(device: torch.device, threads: int) -> str:
    """The device as measured throughputs name it ('cpu: <CPU model>, <n> threads', 'cuda: <GPU>')."""
    from training_jobs.ml.throughput import describe_device

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return describe_device(device.type, threads=threads, gpu_name=gpu)


def save_best(path: Path, setup: TrainingSetup, state: LoopState, config: TrainConfig, provenance: Provenance) -> None:
    save_checkpoint(path, model=setup.eval_model.state_dict(), epoch=state.epoch,
                    best_val_accuracy=state.best_val_accuracy, config=config.to_dict(), provenance=provenance)


def save_last(path: Path, setup: TrainingSetup, state: LoopState, config: TrainConfig, provenance: Provenance, *,
              wall_time_s: float) -> None:
    """Everything a resume needs to carry on after `state.epoch` as if the run had never stopped."""
    save_checkpoint(path, model=setup.model.state_dict(), config=config.to_dict(), provenance=provenance,
                    **{**asdict(state), "wall_time_s": wall_time_s}, **setup.resume_state(), rng=rng_state())


def started_message(config: TrainConfig, state: LoopState, *, param_count: int, splits: DataSplits,
                    device: torch.device, threads: int) -> str:
    return ((f"resumed after epoch {state.epoch} of {config.epochs}" if state.epoch else "started")
            + f"; {config.architecture}, {param_count:,} parameters, {len(splits.train):,} training faces, "
            f"{len(splits.val):,} validation, on {device.type}"
            + (f" with {threads} threads" if device.type == "cpu" else ""))


def evaluate_held_out(model: nn.Module, data: TrainData, splits: DataSplits, config: TrainConfig, state: LoopState,
                      emit: Callable[[dict], None]) -> tuple[dict, float, list[dict], dict]:
    """Step 5 on the best weights: a temperature fitted on the validation logits, the metrics on
    the test split, occlusion maps. -> (metrics, temperature, occlusion, evaluation: TrainResult.evaluation)."""
    model.eval()
    val_logits = predict_logits(model, data.pixels[splits.val], tta_flip=config.tta_flip)
    temperature = fit_temperature(val_logits, data.labels[splits.val]) if config.temperature_scaling else 1.0
    test_pixels, test_labels = data.pixels[splits.test], data.labels[splits.test]
    test_logits = predict_logits(model, test_pixels, tta_flip=config.tta_flip)
    test_probs = softmax(test_logits, temperature)
    metrics = classification_metrics(test_labels, test_probs)
    evaluation = {"indices": np.asarray(splits.test, dtype=np.int64), "labels": np.asarray(test_labels, dtype=np.int64),
                  "predicted": np.asarray(test_probs, dtype=np.float64).argmax(axis=1).astype(np.int64),
                  "probs": np.asarray(test_probs, dtype=np.float32)}
    metrics.update(calibration=calibration_report(test_logits, test_labels, temperature),
                   test_split=splits.test_source, best_epoch=state.best_epoch,
                   best_val_accuracy=state.best_val_accuracy, tta_flip=config.tta_flip, splits=splits.describe())
    occlusion = []
    if config.occlusion_per_class:
        emit({"type": "run.status", "phase": "occlusion_maps", "message": "computing occlusion sensitivity maps"})
        occlusion = occlusion_for(model, test_pixels, test_labels, per_class=config.occlusion_per_class,
                                  patch=config.occlusion_patch, temperature=temperature, seed=config.seed)
    return metrics, temperature, occlusion, evaluation


# ---------------------------------------------------------------- the run

def train(config: TrainConfig, data: TrainData, *, workdir: Path, on_event: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None, resume: bool = True) -> TrainResult:
    """The steps of the module docstring. Raises TrainingCancelled when should_stop() says so (last.pt
    then holds the last finished epoch), ConfigError for a recipe that cannot run here, DataError
    for data it cannot train on (DatasetChanged: last.pt was trained on other data)."""
    config.validate()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    emit = on_event or (lambda event: None)
    device = pick_device(config)
    threads = set_threads(config.num_threads) if device.type == "cpu" else torch.get_num_threads()
    seed_everything(config.seed, config.deterministic)

    # 1. Split; fingerprint the data and the code once, for every checkpoint of this attempt.
    splits = split_data(data, validation_fraction=config.validation_fraction, seed=config.seed)
    notes = list(splits.notes)
    provenance = Provenance.of(data, splits)
    train_pixels, train_labels = training_tensors(data, splits, device)
    val_pixels, val_labels = data.pixels[splits.val], data.labels[splits.val]
    steps = steps_per_epoch(config, len(train_labels))

    # 2-3. What it trains with, and where it left off when last.pt continues this run.
    checkpoint = checkpoint_to_resume(workdir / LAST, config, provenance, notes) if resume else None
    setup = build_training(config, device, train_pixels, data.labels[splits.train], steps, notes,
                           fresh=checkpoint is None)
    state = restore(setup, checkpoint) if checkpoint is not None else LoopState()
    start_epoch, param_count = state.epoch, count_parameters(setup.model)
    emit({"type": "run.status", "phase": "training", "device": device_description(device, threads),
          "message": started_message(config, state, param_count=param_count, splits=splits, device=device,
                                     threads=threads)})

    # 4. Epochs: train, validate, keep the best weights, save where the run stands.
    attempt_start = time.monotonic()
    epoch_seconds: list[float] = []
    while state.epoch < config.epochs and not state.stopped_early:
        epoch_start, frozen = time.monotonic(), backbone_frozen(config, state.epoch)
        train_stats = train_one_epoch(setup, config, train_pixels, train_labels, epoch=state.epoch, steps=steps,
                                      emit=emit, stop=should_stop)
        val_start = time.monotonic()
        val_stats = evaluate(setup.eval_model, val_pixels, val_labels, tta_flip=config.tta_flip,
                             autocast=setup.autocast)
        speed = epoch_speed(train_seconds=val_start - epoch_start,
                            train_images=min(steps * config.batch_size, len(train_labels)),
                            val_seconds=time.monotonic() - val_start,
                            val_images=len(val_labels) * (2 if config.tta_flip else 1))
        lr_used = setup.schedule.lr
        setup.schedule.step_epoch(val_stats[1], state.epoch)
        improved = state.end_epoch(val_stats[1], config.early_stopping_patience)
        if improved:
            save_best(workdir / BEST, setup, state, config, provenance)
        epoch_seconds.append(time.monotonic() - epoch_start)
        event = epoch_event(config, state, epoch_seconds, train=train_stats, val=val_stats, lr=lr_used,
                            improved=improved, frozen=frozen, speed=speed)
        state.history.append(event)
        save_last(workdir / LAST, setup, state, config, provenance,
                  wall_time_s=state.wall_time_s + time.monotonic() - attempt_start)
        emit(event)
    wall_time = state.wall_time_s + time.monotonic() - attempt_start
    if state.stopped_early:
        notes.append(f"stopped early after epoch {state.epoch}: no better validation accuracy for "
                     f"{config.early_stopping_patience} epochs")

    # 5. The best epoch's weights on the held-out split.
    emit({"type": "run.status", "phase": "evaluating",
          "message": f"evaluating the best epoch ({state.best_epoch}) on {splits.test_source}"})
    model = setup.model
    if (workdir / BEST).exists():
        model.load_state_dict(load_checkpoint(workdir / BEST)["model"])
    metrics, temperature, occlusion, evaluation = evaluate_held_out(model, data, splits, config, state, emit)
    metrics["provenance"] = provenance.as_dict()
    model.cpu().eval()
    return TrainResult(
        model=model, history=state.history, metrics=metrics, wall_time_s=round(wall_time, 2),
        param_count=param_count, best_epoch=state.best_epoch, best_val_accuracy=state.best_val_accuracy,
        test_split_name=splits.test_source, epochs_run=state.epoch, stopped_early=state.stopped_early,
        temperature=temperature, splits=splits.describe(), device=device.type, resumed_from_epoch=start_epoch,
        notes=notes, occlusion=occlusion, provenance=provenance.as_dict(), evaluation=evaluation,
    )


def occlusion_for(model, pixels, labels, *, per_class: int, patch: int, temperature: float, seed: int) -> list[dict]:
    """Occlusion maps for a few faces of every class, with the faces, ready to store as JSON."""
    picked = pick_faces_per_class(labels, per_class=per_class, seed=seed)
    if len(picked) == 0:
        return []
    result = occlusion_maps(model, pixels[picked], labels[picked], patch=patch, stride=max(1, patch // 2),
                            temperature=temperature)
    out = []
    for item, index in zip(result.to_json(), picked):
        item.update({"index": int(index), "label": CLASSES[int(labels[index])],
                     "predicted_label": CLASSES[item["predicted"]], "face": pixels[index].tolist()})
        out.append(item)
    return out


# ---------------------------------------------------------------- command line

def get_args_parser() -> argparse.ArgumentParser:
    """Every TrainConfig field as --flag (from fields_schema), plus the data and output paths."""
    parser = argparse.ArgumentParser(
        prog="python -m training_jobs.ml.trainer",
        description="Train a facial expression model on a dataset file without the web app.")
    parser.add_argument("dataset", help="zip or folder of [split/]<class>/<image>, FER2013 CSV, or .npz")
    parser.add_argument("--workdir", required=True, help="checkpoints (last.pt, best.pt) go here")
    parser.add_argument("--onnx", default="", help="export the best model to this ONNX file")
    parser.add_argument("--metrics-json", default="", help="write the evaluation (and history) to this file")
    parser.add_argument("--no-resume", action="store_true", help="ignore an existing last.pt")
    parser.add_argument("--version", default="", help="fer.version written into the ONNX metadata")
    add_config_arguments(parser)
    return parser


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("recipe (TrainConfig)")
    for spec in TrainConfig.fields_schema():
        flag = "--" + spec["name"].replace("_", "-")
        help_text = spec["help"]
        if spec["choices"]:
            help_text += f" One of: {', '.join(spec['choices'])}."
        help_text += f" Default: {spec['default']!r}."
        # Strings so that TrainConfig.from_dict does the one validation, with its messages.
        group.add_argument(flag, dest=spec["name"], default=None, metavar=spec["type"].upper(), help=help_text)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values = {name: getattr(args, name) for name in TrainConfig.field_names() if getattr(args, name, None) is not None}
    return TrainConfig.from_dict(values)


class ConsoleProgress:
    """A one-line progress bar for terminals, and one line per finished epoch."""

    def __init__(self, stream=sys.stderr):
        self.stream = stream

    def __call__(self, event: dict) -> None:
        kind = event["type"]
        if kind == "run.batch":
            width = 30
            filled = int(width * event["progress"] / 100)
            self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {event['progress']:5.1f}% "
                              f"epoch {event['epoch']}/{event['epochs']} batch {event['batch']}/{event['batches']} "
                              f"{event['images_per_s']:.0f} img/s ")
        elif kind == "run.epoch":
            self.stream.write(
                f"\repoch {event['epoch']}/{event['epochs']}: loss {event['train_loss']:.4f} "
                f"acc {event['train_accuracy']:.4f} | val loss {event['val_loss']:.4f} acc {event['val_accuracy']:.4f}"
                f" | lr {event['lr']:.2e} | {event['seconds']:.1f}s, eta {event['eta_seconds'] / 60:.1f} min"
                f"{' *' if event['improved'] else ''}\n")
        else:
            self.stream.write(f"\r{event.get('phase') or event.get('status')}: {event.get('message', '')}\n")
        self.stream.flush()


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as exc:
        print(f"invalid recipe: {exc}", file=sys.stderr)
        return 2
    data = load_dataset_file(args.dataset)
    print(f"{len(data):,} faces from {args.dataset}", file=sys.stderr)
    result = train(config, data, workdir=Path(args.workdir), on_event=ConsoleProgress(), resume=not args.no_resume)
    m = result.metrics
    print(f"test ({result.test_split_name}): accuracy {m['accuracy']:.4f}, macro F1 {m['macro_f1']:.4f}, "
          f"macro AUC {m['macro_auc'] or float('nan'):.4f}, ECE {m['calibration']['ece_before']:.4f} -> "
          f"{m['calibration']['ece_after']:.4f} (T={result.temperature:.3f}); best epoch {result.best_epoch}, "
          f"{result.wall_time_s:.0f}s, {result.param_count:,} parameters")
    for note in result.notes:
        print(f"note: {note}")
    out = {"config": config.to_dict(), "metrics": m, "history": result.history, "wall_time_s": result.wall_time_s,
           "param_count": result.param_count, "temperature": result.temperature, "notes": result.notes}
    if args.onnx:
        from training_jobs.ml.export import export_onnx, onnx_latency_ms
        from training_jobs.ml.metrics import summary

        report = export_onnx(result.model, Path(args.onnx), architecture=config.architecture,
                             version=args.version or Path(args.onnx).stem, metrics=summary(m),
                             temperature=result.temperature, tta_flip=config.tta_flip)
        latency = onnx_latency_ms(report.path)
        out["onnx"] = {"path": str(report.path), "max_abs_diff": report.max_abs_diff, "latency_ms": latency}
        print(f"exported {report.path} (max |ONNX - PyTorch| {report.max_abs_diff:.2e}, batch-1 latency "
              f"{latency:.2f} ms)")
    if args.metrics_json:
        Path(args.metrics_json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
