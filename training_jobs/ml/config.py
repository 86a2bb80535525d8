"""The training recipe: one config object that the form, the API and the command line all build.

Defaults follow Bah & Xue (2022): Nadam at 1e-3, batch 64, 100 epochs, inverse-frequency class
weights, ReduceLROnPlateau on validation accuracy down to 1e-7, early stopping after 30 epochs
without improvement, flip/rotation/shift/zoom/brightness augmentation.

Every field carries its type, range or choices, a label and a help line for people (what it does and
what the papers used) in its metadata, so `TrainConfig.fields_schema()` is the single source for
forms, serializers and CLI flags. Ready-made recipes are in `presets.py`.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "nadam")
SCHEDULERS = ("plateau", "cosine", "onecycle", "none")
DEVICES = ("auto", "cpu", "cuda")
# How the form and the API name the choices of the fields above.
CHOICE_LABELS = {
    "optimizer": {"sgd": "SGD with momentum", "adam": "Adam", "adamw": "AdamW", "rmsprop": "RMSprop",
                  "nadam": "Nadam"},
    "scheduler": {"plateau": "Lower the rate when validation accuracy stalls", "cosine": "Cosine decay",
                  "onecycle": "One-cycle", "none": "Constant"},
    "device": {"auto": "Automatic (a GPU when there is one)", "cpu": "CPU", "cuda": "CUDA GPU"},
}


class ConfigError(ValueError):
    """Invalid recipe; `errors` maps each bad field to a message that names the valid values."""

    def __init__(self, errors: dict[str, str]):
        self.errors = dict(errors)
        super().__init__("; ".join(f"{name}: {message}" for name, message in self.errors.items()))


def architecture_choices() -> tuple[str, ...]:
    # The catalogue's names, not the torch registry's: the web validates recipes without torch.
    from fercore.catalogue import NAMES

    return NAMES


def _f(default, help, *, label, basic=False, choices=None, min=None, max=None, group="recipe"):
    """A recipe field: `label` and `help` are for people (the form, the API, --help); `basic` fields come
    first on the form, the rest under Advanced."""
    return field(default=default, metadata={"label": label, "help": help, "basic": basic, "choices": choices,
                                            "min": min, "max": max, "group": group})


@dataclass
class TrainConfig:
    # Model and optimisation.
    architecture: str = _f(
        "adapted_residual", "The network to train. Bah & Xue 2022: adapted residual; Mutaliyev & Kalpeyeva 2026: "
        "light residual; Auliana 2024: the ResNet-34 + ResNet-50 hybrid; FERWeb's default model: fast ResNet.",
        label="Network", basic=True, choices="architectures")
    optimizer: str = _f(
        "nadam", "How the weights are updated. Bah & Xue 2022: Nadam; Auliana 2024 compared SGD with momentum, "
        "Adam and RMSprop; FERWeb's default model: SGD with Nesterov momentum.",
        label="Optimizer", basic=True, choices=OPTIMIZERS)
    learning_rate: float = _f(
        1e-3, "Size of each update (the peak of a one-cycle schedule). Bah & Xue 2022: 0.001 with Nadam; "
        "FERWeb's default model: 0.1 with SGD.", label="Learning rate", basic=True, min=1e-7, max=10.0)
    momentum: float = _f(
        0.9, "Share of the previous update carried into the next, for SGD (Nesterov) and RMSprop. FERWeb's "
        "default model: 0.9.", label="Momentum", min=0.0, max=0.999)
    batch_size: int = _f(
        64, "Faces per update: larger batches are faster per face but need more memory. Bah & Xue 2022: 64; "
        "FERWeb's default model: 128.", label="Batch size", basic=True, min=1, max=4096)
    epochs: int = _f(
        100, "Passes over the training faces; early stopping may end the run sooner. Bah & Xue 2022: up to 100; "
        "FERWeb's default model: 90.", label="Epochs", basic=True, min=1, max=1000)
    weight_decay: float = _f(
        0.0, "Pulls the weights towards zero against overfitting (decoupled for AdamW). FERWeb's default model: "
        "0.0005; the papers give none.", label="Weight decay", min=0.0, max=1.0)
    class_weighting: bool = _f(
        True, "Count each face in inverse proportion to its class's size, so rare classes such as disgust weigh "
        "more. Bah & Xue 2022 use it; FERWeb's default model does not (it cost 4.5 points of accuracy).",
        label="Weight rare classes more", basic=True)
    label_smoothing: float = _f(
        0.0, "Soften the targets so the network is less over-confident. FERWeb's default model: 0.1; the papers "
        "use none.", label="Label smoothing", min=0.0, max=0.5)
    # Learning-rate schedule.
    scheduler: str = _f(
        "plateau", "How the learning rate changes: lowered when validation accuracy stalls (Bah & Xue 2022), "
        "cosine decay, one-cycle (FERWeb's default model), or constant.",
        label="Learning-rate schedule", choices=SCHEDULERS, group="schedule")
    plateau_factor: float = _f(
        0.5, "When validation accuracy stalls, multiply the learning rate by this.",
        label="On a plateau, multiply the rate by", min=0.01, max=0.99, group="schedule")
    plateau_patience: int = _f(
        10, "Epochs without a better validation accuracy before the rate is lowered.",
        label="Plateau patience (epochs)", min=0, max=1000, group="schedule")
    min_lr: float = _f(
        1e-7, "The schedule never takes the rate below this. Bah & Xue 2022: 0.0000001.",
        label="Lowest learning rate", min=0.0, max=1.0, group="schedule")
    warmup_epochs: int = _f(
        0, "Raise the rate linearly from near zero over these first epochs (plateau and cosine schedules).",
        label="Warm-up epochs", min=0, max=100, group="schedule")
    early_stopping_patience: int = _f(
        30, "Stop after this many epochs without a better validation accuracy (0: never stop early). "
        "Bah & Xue 2022: 30.", label="Early stopping patience (epochs)", min=0, max=1000, group="schedule")
    # Augmentation, applied to whole batches of tensors.
    hflip: bool = _f(True, "Mirror faces left to right at random. Bah & Xue 2022 and Choudhari et al. do.",
                     label="Mirror faces", group="augmentation")
    rotation_deg: float = _f(10.0, "Turn faces at random by up to this many degrees either way. Bah & Xue "
                                   "2022 rotate.", label="Rotation (degrees)", min=0.0, max=45.0,
                             group="augmentation")
    shift: float = _f(0.1, "Move faces at random by up to this share of their side. Bah & Xue 2022 shift.",
                      label="Shift", min=0.0, max=0.5, group="augmentation")
    zoom: float = _f(0.1, "Zoom in or out at random by up to this share. Bah & Xue 2022 zoom.", label="Zoom",
                     min=0.0, max=0.5, group="augmentation")
    brightness: float = _f(0.2, "Brighten or darken at random by up to this share of full scale. Bah & Xue 2022 "
                                "vary brightness.", label="Brightness", min=0.0, max=1.0, group="augmentation")
    contrast: float = _f(0.2, "Scale the contrast at random by 1 plus or minus up to this. Not in the papers.",
                         label="Contrast", min=0.0, max=1.0, group="augmentation")
    erasing_prob: float = _f(
        0.0, "Chance of greying out a random rectangle of a face, so the network copes with hands and glasses. "
        "FERWeb's default model: 0.25.", label="Random erasing", min=0.0, max=1.0, group="augmentation")
    mixup_alpha: float = _f(
        0.0, "Blend pairs of faces and their labels with this strength (0: off). Not in the papers; it did not "
        "help FERWeb's default recipe.", label="Mixup strength", min=0.0, max=10.0, group="augmentation")
    cutmix_alpha: float = _f(
        0.0, "Paste a patch of one face onto another and mix their labels by area, with this strength (0: off). "
        "Not in the papers.", label="CutMix strength", min=0.0, max=10.0, group="augmentation")
    ema_decay: float = _f(
        0.0, "Keep a running average of the weights with this decay and evaluate and export it (0: off; 0.999 is "
        "typical). Not in the papers.", label="Weight averaging", min=0.0, max=0.99999)
    # Data.
    validation_fraction: float = _f(
        0.1, "Share of each class's training faces held out to pick the best epoch, when the dataset has no "
        "validation split of its own. Bah & Xue 2022 held out 5%.", label="Validation share", min=0.01, max=0.5,
        group="data")
    seed: int = _f(42, "Fixes the split, the starting weights, the shuffling and the augmentation, so a run can "
                       "be repeated.", label="Random seed", min=0, max=2**31 - 1, group="data")
    deterministic: bool = _f(False, "Use deterministic algorithms, so the same seed gives exactly the same run "
                                    "(can be slower).", label="Exactly reproducible", group="data")
    # Transfer learning.
    init_checkpoint: str = _f("", "Weights to start from (a file on the server); empty: random He "
                                  "initialisation.", label="Starting weights", group="transfer")
    freeze_backbone_epochs: int = _f(
        0, "When starting from earlier weights, train only the last layer for this many first epochs. Auliana "
        "2024 fine-tune networks trained on ImageNet.", label="Train only the classifier first (epochs)", min=0,
        max=1000, group="transfer")
    teacher_checkpoint: str = _f(
        "", "Learn from this trained model's predictions: a best.pt of an earlier run (run on every batch) or "
        "exported .onnx models, comma-separated for an ensemble (run once per training face, un-augmented); "
        "empty: no teacher.", label="Teacher", group="transfer")
    distill_weight: float = _f(
        0.5, "Share of the loss that matches the teacher's softened predictions. FERWeb's default model: 0.5.",
        label="Teacher's share of the loss", min=0.0, max=1.0, group="transfer")
    distill_temperature: float = _f(
        4.0, "How much the teacher's predictions are softened. FERWeb's default model: 4.",
        label="Teacher temperature", min=1.0, max=20.0, group="transfer")
    # Evaluation and export.
    tta_flip: bool = _f(
        False, "Predict each face and its mirror image and average the two, in the evaluation and in the exported "
        "model (twice the work per face). FERWeb's default model does.", label="Average with the mirrored face",
        group="export")
    temperature_scaling: bool = _f(
        True, "Fit one temperature on the validation split so the probabilities match how often the model is "
        "right, and fold it into the exported model.", label="Calibrate the confidence", group="export")
    occlusion_per_class: int = _f(
        2, "Test faces per class that get a map of the regions their prediction depends on (0: none). Auliana "
        "2024 explain predictions this way.", label="Occlusion maps per class", min=0, max=20, group="export")
    occlusion_patch: int = _f(8, "Side of the grey square slid over the face for those maps, in pixels.",
                              label="Occlusion square (pixels)", min=2, max=24, group="export")
    # Hardware.
    device: str = _f("auto", "Where to train: automatic uses a CUDA GPU when the training worker has one.",
                     label="Device", choices=DEVICES, group="hardware")
    bf16: bool = _f(False, "Faster 16-bit arithmetic on CPUs that support it; other CPUs train in full "
                           "precision and the run says so.", label="Half precision on the CPU (bfloat16)",
                    group="hardware")
    num_threads: int = _f(0, "CPU cores the training uses (0: all the training worker's cores).",
                          label="CPU threads", min=0, max=1024, group="hardware")
    max_batches_per_epoch: int = _f(
        0, "End each epoch after this many batches, for a quick trial (0: all).", label="Batches per epoch (cap)",
        min=0, max=1_000_000, group="hardware")

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
        """[{name, label, type, default, choices, choice_labels, min, max, help, group, basic}] for every field,
        in declaration order."""
        schema = []
        for f in dataclasses.fields(cls):
            choices = f.metadata["choices"]
            if choices == "architectures":
                choices = architecture_choices()
            schema.append({
                "name": f.name,
                "label": f.metadata["label"],
                "type": _type_name(f.type),
                "default": f.default,
                "choices": list(choices) if choices else None,
                "choice_labels": CHOICE_LABELS.get(f.name),
                "min": f.metadata["min"],
                "max": f.metadata["max"],
                "help": f.metadata["help"],
                "group": f.metadata["group"],
                "basic": f.metadata["basic"],
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
