"""The architectures FERWeb can train, as plain data: no torch, no Django.

The web process validates a recipe's `architecture` against these names and shows their sizes
without building a network (building all eight takes seconds and loads PyTorch). The networks
themselves live in `training_jobs/ml/architectures.py`, which takes its descriptions from here;
`tests/training_ml/test_catalogue.py` builds every network and checks the counts recorded here:
change a network, and that test gives the new numbers to record.

`params`: trainable parameters (BatchNorm running statistics are buffers and do not count).
`macs`: multiply-adds of the convolutions and dense layers for one 1x48x48 face (biases,
BatchNorm, activations and pooling not counted), the usual measure of compute per face.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

INPUT_SHAPE = (1, 48, 48)  # channels, height, width of one face


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str  # one line for the new-run form and the API
    source: str  # the paper it follows, or FERWeb for our own designs
    params: int
    macs: int

    def as_dict(self) -> dict:
        """The API's shape: `param_count` as runs and model versions name it."""
        data = asdict(self)
        data["param_count"] = data.pop("params")
        return data


ARCHITECTURES: dict[str, Architecture] = {
    architecture.name: architecture
    for architecture in (
        Architecture(
            "adapted_residual",
            "Bah & Xue 2022: 12 conv layers with three identity residual blocks (9.8M parameters).",
            "Bah & Xue, Intelligence & Robotics 2022, Table 1",
            params=9_766_391, macs=200_875_520,
        ),
        Architecture(
            "basic_cnn",
            "Bah & Xue 2022 baseline: the same network without its residual blocks (4.7M parameters).",
            "Bah & Xue, Intelligence & Robotics 2022",
            params=4_730_423, macs=174_923_264,
        ),
        Architecture(
            "light_residual",
            "Mutaliyev & Kalpeyeva 2026: three residual stages of 32/64/128 filters for CPUs (0.55M parameters).",
            "Mutaliyev & Kalpeyeva, IJACSA 2026",
            params=551_175, macs=149_368_320,
        ),
        Architecture(
            "resnet34",
            "ResNet-34 adapted to 48x48 grayscale faces (21M parameters).",
            "He et al. 2016; Auliana et al. 2024",
            params=21_279_431, macs=652_496_384,
        ),
        Architecture(
            "resnet50",
            "ResNet-50 (bottleneck blocks) adapted to 48x48 grayscale faces (23M parameters).",
            "He et al. 2016; Auliana et al. 2024",
            params=23_513_543, macs=730_363_904,
        ),
        Architecture(
            "hybrid_resnet34_50",
            "Auliana et al. 2024: ResNet-34 and ResNet-50 features fused before one classifier (45M parameters).",
            "Auliana et al., KLIK 2024",
            params=44_792_967, macs=1_382_860_288,
        ),
        Architecture(
            "compact_resnet",
            "FERWeb's own: a small ResNet that halves the face first and goes deep at 12x12 (1.4M parameters).",
            "FERWeb",
            params=1_421_655, macs=144_222_864,
        ),
        Architecture(
            "fast_resnet",
            "FERWeb's own, for serving: the compact ResNet down to 3x3, one block per stage "
            "(1.2M parameters, ~40M multiply-adds per face).",
            "FERWeb",
            params=1_236_903, macs=41_363_200,
        ),
    )
}

NAMES: tuple[str, ...] = tuple(ARCHITECTURES)


def get(name: str) -> Architecture:
    """The entry of `name`; ValueError that lists the valid names otherwise."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(NAMES)}") from None


def catalogue() -> list[dict]:
    """[{name, description, source, param_count, macs}] in registry order, for forms and the API."""
    return [architecture.as_dict() for architecture in ARCHITECTURES.values()]
