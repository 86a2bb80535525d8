"""The training recipe: one config object that the form, the API and the command line all build.

Defaults follow Bah & Xue (2022): Nadam at 1e-3, batch 64, 100 epochs, inverse-frequency class
weights, ReduceLROnPlateau on validation accuracy down to 1e-7, early stopping after 30 epochs
without improvement, flip/rotation/shift/zoom/brightness augmentation.

Every field carries its type, range or choices and a help line in its metadata, so
`TrainConfig.fields_schema()` is the single source for forms, serializers and CLI flags.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "nadam")
SCHEDULERS = ("plateau", "cosine", "onecycle", "none")
DEVICES = ("auto", "cpu", "cuda")


class ConfigError(ValueError):
    """Invalid recipe; `errors` maps each bad field to a message that names the valid values."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


def architecture_choices() -> tuple[str, ...]:
    # The catalogue's names, not the torch registry's: the web validates recipes without torch.
    from fercore.catalogue import NAMES

    return NAMES


def _f(default, help, *, choices=None, min=None, max=None, group="recipe"):
    return field(default=default, metadata={"help": help, "choices": choices, "min": min, "max": max, "group": group})


@dataclass
class TrainConfig:
    # Model and optimisation.
    architecture: str = _f("adapted_residual", "Network to train (see the architecture list).", choices="architectures")
    optimizer: str = _f("nadam", "Optimizer.", choices=OPTIMIZERS)
    learning_rate: float = _f(1e-3, "Initial (or peak, for one-cycle) learning rate.", min=1e-7, max=10.0)
    momentum: float = _f(0.9, "Momentum for SGD and RMSprop.", min=0.0, max=0.999)
    batch_size: int = _f(64, "Images per batch.", min=1, max=4096)
    epochs: int = _f(100, "Maximum number of epochs.", min=1, max=1000)
    weight_decay: float = _f(0.0, "L2 penalty (decoupled for AdamW).", min=0.0, max=1.0)
    class_weighting: bool = _f(True, "Weight the loss by inverse class frequency of the training split.")
    label_smoothing: float = _f(0.0, "Label smoothing of the cross-entropy targets.", min=0.0, max=0.5)
    # Learning-rate schedule.
    scheduler: str = _f("plateau", "Learning-rate schedule.", choices=SCHEDULERS, group="schedule")
    plateau_factor: float = _f(0.5, "Plateau: multiply the rate by this when validation accuracy stalls.",
                               min=0.01, max=0.99, group="schedule")
    plateau_patience: int = _f(10, "Plateau: epochs without improvement before reducing.", min=0, max=1000,
                               group="schedule")
    min_lr: float = _f(1e-7, "Lowest learning rate the schedule may reach.", min=0.0, max=1.0, group="schedule")
    warmup_epochs: int = _f(0, "Linear warm-up epochs (plateau and cosine).", min=0, max=100, group="schedule")
    early_stopping_patience: int = _f(30, "Stop after this many epochs without a better validation accuracy "
                                          "(0 = never).", min=0, max=1000, group="schedule")
    # Augmentation, applied to whole batches of tensors.
    hflip: bool = _f(True, "Random horizontal flip.", group="augmentation")
    rotation_deg: float = _f(10.0, "Random rotation range, +/- degrees.", min=0.0, max=45.0, group="augmentation")
    shift: float = _f(0.1, "Random shift range, fraction of the side.", min=0.0, max=0.5, group="augmentation")
    zoom: float = _f(0.1, "Random zoom range, +/- fraction.", min=0.0, max=0.5, group="augmentation")
    brightness: float = _f(0.2, "Random brightness offset range, +/- fraction of full scale.", min=0.0, max=1.0,
                           group="augmentation")
    contrast: float = _f(0.2, "Random contrast factor range, 1 +/- this.", min=0.0, max=1.0, group="augmentation")
    erasing_prob: float = _f(0.0, "Probability of erasing a random rectangle (occlusion robustness).",
                             min=0.0, max=1.0, group="augmentation")
    mixup_alpha: float = _f(0.0, "Mixup Beta(alpha, alpha) strength (0 = off).", min=0.0, max=10.0,
                            group="augmentation")
    cutmix_alpha: float = _f(0.0, "CutMix Beta(alpha, alpha) strength (0 = off).", min=0.0, max=10.0,
                             group="augmentation")
    ema_decay: float = _f(0.0, "Keep an exponential moving average of the weights with this decay and "
                                "evaluate/export it (0 = off; 0.999 is typical).", min=0.0, max=0.99999)
    # Data.
    validation_fraction: float = _f(0.1, "Stratified share of training data held out for validation when the "
                                          "dataset has no validation split.", min=0.01, max=0.5, group="data")
    seed: int = _f(42, "Random seed for the split, initialisation, shuffling and augmentation.", min=0,
                   max=2**31 - 1, group="data")
    deterministic: bool = _f(False, "Deterministic algorithms (reproducible, can be slower).", group="data")
    # Transfer learning.
    init_checkpoint: str = _f("", "Checkpoint to start from (path); empty = random He initialisation.",
                              group="transfer")
    freeze_backbone_epochs: int = _f(0, "Train only the classifier for this many first epochs.", min=0, max=1000,
                                     group="transfer")
    teacher_checkpoint: str = _f("", "Distil from this trained model: a best.pt of an earlier run (run on "
                                     "every batch) or exported .onnx models, comma-separated for an "
                                     "ensemble (run once per training face, un-augmented); empty = no "
                                     "teacher.", group="transfer")
    distill_weight: float = _f(0.5, "Share of the loss that matches the teacher's softened predictions.",
                               min=0.0, max=1.0, group="transfer")
    distill_temperature: float = _f(4.0, "Softening temperature of the distillation targets.", min=1.0, max=20.0,
                                    group="transfer")
    # Evaluation and export.
    tta_flip: bool = _f(False, "Average the prediction with that of the mirrored face (also in the exported "
                               "model).", group="export")
    temperature_scaling: bool = _f(True, "Fit a temperature on the validation split and fold it into the "
                                         "exported logits.", group="export")
    occlusion_per_class: int = _f(2, "Test faces per class that get an occlusion sensitivity map (0 = none).",
                                  min=0, max=20, group="export")
    occlusion_patch: int = _f(8, "Side of the grey occluding square, in pixels.", min=2, max=24, group="export")
    # Hardware.
    device: str = _f("auto", "Where to train: auto uses CUDA when present.", choices=DEVICES, group="hardware")
    bf16: bool = _f(False, "bfloat16 autocast on the CPU (only where the CPU supports it).", group="hardware")
    num_threads: int = _f(0, "CPU threads (0 = all cores).", min=0, max=1024, group="hardware")
    max_batches_per_epoch: int = _f(0, "Cap on training batches per epoch (0 = all; for quick trials).", min=0,
                                    max=1_000_000, group="hardware")

    # ---- construction and validation

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> "TrainConfig":
        """Build and validate; unknown names, wrong types and values out of range raise ConfigError."""
        data = dict(data or {})
        errors: dict[str, str] = {}
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - set(known))
        for name in unknown:
            errors[name] = f"unknown field; valid fields are {', '.join(known)}"
        values = {}
        for name, f in known.items():
            if name not in data:
                continue
            try:
                values[name] = _coerce(data[name], f.type, f.metadata)
            except ValueError as exc:
                errors[name] = str(exc)
        if errors:
            raise ConfigError(errors)
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        errors = {}
        for f in dataclasses.fields(self):
            try:
                _coerce(getattr(self, f.name), f.type, f.metadata)
            except ValueError as exc:
                errors[f.name] = str(exc)
        if self.freeze_backbone_epochs and self.freeze_backbone_epochs >= self.epochs:
            errors["freeze_backbone_epochs"] = f"must be below epochs ({self.epochs}) so the backbone trains at all"
        if errors:
            raise ConfigError(errors)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> "TrainConfig":
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    @classmethod
    def fields_schema(cls) -> list[dict[str, Any]]:
        """[{name, type, default, choices, min, max, help, group}] for every field, in declaration order."""
        schema = []
        for f in dataclasses.fields(cls):
            choices = f.metadata["choices"]
            if choices == "architectures":
                choices = architecture_choices()
            schema.append({
                "name": f.name,
                "type": _type_name(f.type),
                "default": f.default,
                "choices": list(choices) if choices else None,
                "min": f.metadata["min"],
                "max": f.metadata["max"],
                "help": f.metadata["help"],
                "group": f.metadata["group"],
            })
        return schema


def _type_name(annotation) -> str:
    # `from __future__ import annotations` turns the annotations into strings.
    return annotation if isinstance(annotation, str) else annotation.__name__


_TRUE = ("true", "1", "yes", "on")
_FALSE = ("false", "0", "no", "off", "")


def _coerce(value, annotation, meta):
    """Convert form/CLI strings to the field's type and check choices and range."""
    kind = _type_name(annotation)
    if kind == "bool":
        if isinstance(value, bool):
            out = value
        elif isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            out = value.strip().lower() in _TRUE
        elif isinstance(value, int) and value in (0, 1):
            out = bool(value)
        else:
            raise ValueError(f"must be true or false, got {value!r}")
    elif kind == "int":
        try:
            if isinstance(value, bool):
                raise TypeError
            if isinstance(value, float) and not value.is_integer():
                raise TypeError
            out = int(str(value).strip()) if isinstance(value, str) else int(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a whole number, got {value!r}") from None
    elif kind == "float":
        try:
            if isinstance(value, bool):
                raise TypeError
            out = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"must be a number, got {value!r}") from None
        if not math.isfinite(out):
            raise ValueError(f"must be a finite number, got {value!r}")
    else:
        if not isinstance(value, str):
            raise ValueError(f"must be text, got {value!r}")
        out = value.strip()
    choices = meta.get("choices")
    if choices == "architectures":
        choices = architecture_choices()
    if choices and out not in choices:
        raise ValueError(f"{out!r} is not one of {', '.join(choices)}")
    low, high = meta.get("min"), meta.get("max")
    if low is not None and out < low or high is not None and out > high:
        raise ValueError(f"must be between {low:g} and {high:g}, got {out!r}")
    return out
