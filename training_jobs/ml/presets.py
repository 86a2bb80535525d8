"""Ready-made recipes: a quick first model, FERWeb's default model, and each paper's published recipe.

A preset names the TrainConfig fields it sets; every other field keeps its default, so
`Preset.recipe()` is always a complete recipe and two presets never leak into each other. The
form fills every field from it, and the API and the command line merge a client's own values
on top (`apply_preset`). No Django, no torch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from training_jobs.ml.config import ConfigError, TrainConfig


@dataclass(frozen=True)
class Preset:
    name: str
    title: str
    description: str  # one line for people: what it trains, and what the paper leaves open
    source: str  # the paper it follows, or FERWeb
    settings: dict[str, Any] = field(default_factory=dict)  # the fields it sets; the rest default

    def recipe(self) -> dict[str, Any]:
        """Every TrainConfig field: the defaults with this preset's settings on top."""
        return {**TrainConfig().to_dict(), **self.settings}

    def as_dict(self) -> dict[str, Any]:
        """The API's shape: {name, title, description, source, config}."""
        return {"name": self.name, "title": self.title, "description": self.description, "source": self.source,
                "config": self.recipe()}


# Augmentation as Bah & Xue list it (flip, rotation, shift, zoom, brightness; no contrast).
_BAH_XUE_AUGMENTATION = {"hflip": True, "rotation_deg": 10.0, "shift": 0.1, "zoom": 0.1, "brightness": 0.2,
                         "contrast": 0.0}


def _auliana(optimizer: str, title: str, learning_rate: float, momentum: float) -> Preset:
    return Preset(
        f"auliana_2024_{optimizer}", f"Auliana 2024, {title}",
        f"The ResNet-34 + ResNet-50 hybrid (45M parameters). The paper gives no rates: {learning_rate:g}, batch 64, "
        "30 epochs, from random weights; very slow on a CPU.",
        "Auliana, Mahrojah & Aryono, KLIK 2024",
        {"architecture": "hybrid_resnet34_50", "optimizer": optimizer, "learning_rate": learning_rate,
         "momentum": momentum, "batch_size": 64, "epochs": 30, "weight_decay": 0.0001, "class_weighting": False,
         "scheduler": "plateau", "plateau_factor": 0.5, "plateau_patience": 5, "early_stopping_patience": 10},
    )


PRESETS: dict[str, Preset] = {preset.name: preset for preset in (
    Preset(
        "quick", "Quick first model",
        "A first model in a few minutes on a CPU: the fast network, 5 epochs of AdamW with a one-cycle "
        "schedule and light augmentation.",
        "FERWeb",
        # AdamW, not the default model's SGD at 0.1: in 5 epochs SGD reached 39% on FER2013, AdamW 52%.
        {"architecture": "fast_resnet", "optimizer": "adamw", "learning_rate": 0.003,
         "batch_size": 128, "epochs": 5, "weight_decay": 0.05, "class_weighting": False, "label_smoothing": 0.1,
         "scheduler": "onecycle", "early_stopping_patience": 0, "rotation_deg": 5.0, "shift": 0.05, "zoom": 0.05,
         "bf16": True, "occlusion_per_class": 1},
    ),
    Preset(
        "ferweb_default", "FERWeb's default model",
        "The shipped model's recipe without its teacher: 90 epochs of SGD on the fast network (68.7% on "
        "FER2013, about 110 minutes on one CPU thread).",
        "FERWeb (docs/results.md)",
        {"architecture": "fast_resnet", "optimizer": "sgd", "momentum": 0.9, "learning_rate": 0.1,
         "batch_size": 128, "epochs": 90, "weight_decay": 0.0005, "class_weighting": False, "label_smoothing": 0.1,
         "scheduler": "onecycle", "early_stopping_patience": 0, "erasing_prob": 0.25, "tta_flip": True,
         "bf16": True},
    ),
    Preset(
        "bah_xue_2022", "Bah & Xue 2022",
        "The adapted residual network as published: Nadam, batch 64, up to 100 epochs, class weights (75% "
        "reported; slow on a CPU).",
        "Bah & Xue, Intelligence & Robotics 2022",
        {"architecture": "adapted_residual", "optimizer": "nadam", "learning_rate": 0.001, "batch_size": 64,
         "epochs": 100, "weight_decay": 0.0, "class_weighting": True, "label_smoothing": 0.0,
         "scheduler": "plateau", "min_lr": 1e-7, "early_stopping_patience": 30, **_BAH_XUE_AUGMENTATION},
    ),
    Preset(
        "mutaliyev_2026", "Mutaliyev & Kalpeyeva 2026",
        "The light residual network for CPUs. The paper names no optimizer: Adam at 0.001, batch 64, 60 "
        "epochs of cosine decay.",
        "Mutaliyev & Kalpeyeva, IJACSA 2026",
        {"architecture": "light_residual", "optimizer": "adam", "learning_rate": 0.001, "batch_size": 64,
         "epochs": 60, "weight_decay": 0.0, "class_weighting": False, "label_smoothing": 0.0,
         "scheduler": "cosine", "min_lr": 1e-6, "early_stopping_patience": 0},
    ),
    _auliana("sgd", "SGD with momentum", 0.01, 0.9),
    _auliana("adam", "Adam", 0.001, 0.9),
    _auliana("rmsprop", "RMSprop", 0.001, 0.0),
)}

NAMES: tuple[str, ...] = tuple(PRESETS)


def default_for(device: str) -> str:
    """The preset a new run opens on: a quick one where the training worker has only a CPU."""
    return "ferweb_default" if device == "cuda" else "quick"


def get(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ConfigError({"preset": f"{name!r} is not a preset; valid presets are {', '.join(NAMES)}"}) from None


def apply_preset(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The preset's complete recipe with `overrides` on top (not validated: TrainConfig.from_dict does that).

    An unknown preset raises ConfigError on `preset`, naming the valid ones.
    """
    return {**get(name).recipe(), **dict(overrides or {})}
