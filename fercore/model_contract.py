"""The model artifact's metadata (DESIGN.md, "Model artifact"): the `fer.*` properties, written and read here.

Every exported model is one ONNX file a stranger can run without our code; its `metadata_props` say
what its outputs mean and how its input was made:
- `fer.classes`: JSON list of class names, in the order of the `logits` outputs;
- `fer.input`: JSON {height, width, channels, scale}, from `preprocess.MODEL_INPUT`;
- `fer.architecture`, `fer.version`: plain strings;
- `fer.metrics`: JSON of the held-out metrics.
Export, quantization, publishing and the test models write them with `contract_metadata` and
`set_metadata`; the engine and the commands read them with `parse_metadata` (or `read_metadata`
for a file). Other `fer.*` keys (temperature, quantization, the float model's hash) ride along.
No onnx import at module level: ONNX protos are handled through their own methods.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from .classes import CLASSES
from .preprocess import MODEL_INPUT

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
CLASSES_KEY = "fer.classes"
INPUT_KEY = "fer.input"
ARCHITECTURE_KEY = "fer.architecture"
VERSION_KEY = "fer.version"
METRICS_KEY = "fer.metrics"


@dataclass(frozen=True)
class ModelMetadata:
    """A model's fer.* metadata, decoded; what the file leaves out takes the contract's value."""

    classes: tuple[str, ...] = CLASSES
    input: dict = field(default_factory=lambda: dict(MODEL_INPUT))
    architecture: str = ""
    version: str = ""
    metrics: dict = field(default_factory=dict)
    props: dict = field(default_factory=dict)  # every property as stored, fer.* and others


def contract_metadata(*, architecture: str, version: str, metrics: dict | None = None,
                      classes=CLASSES, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The metadata_props of a model that follows the contract, as strings (extra keys last)."""
    return {
        CLASSES_KEY: json.dumps(list(classes)),
        INPUT_KEY: json.dumps(MODEL_INPUT),
        ARCHITECTURE_KEY: architecture,
        VERSION_KEY: str(version),
        METRICS_KEY: json.dumps(metrics or {}),
        **(extra or {}),
    }


def parse_metadata(props: Mapping[str, str]) -> ModelMetadata:
    """Decode metadata_props (from onnx or from ONNX Runtime's custom_metadata_map)."""
    return ModelMetadata(
        classes=tuple(json.loads(props[CLASSES_KEY])) if CLASSES_KEY in props else CLASSES,
        input=json.loads(props[INPUT_KEY]) if INPUT_KEY in props else dict(MODEL_INPUT),
        architecture=props.get(ARCHITECTURE_KEY, ""),
        version=props.get(VERSION_KEY, ""),
        metrics=json.loads(props[METRICS_KEY]) if props.get(METRICS_KEY) else {},
        props=dict(props),
    )


def get_metadata(model) -> dict[str, str]:
    """The metadata_props of an onnx ModelProto, as a dict."""
    return {prop.key: prop.value for prop in model.metadata_props}


def set_metadata(model, props: Mapping[str, str]) -> None:
    """Replace the metadata_props of an onnx ModelProto with `props`, in their order."""
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)


def read_metadata(path) -> dict[str, str]:
    """The metadata_props of an ONNX file, without loading external weight files."""
    import onnx

    return get_metadata(onnx.load(str(Path(path)), load_external_data=False))
