"""Faces a model classifies for sure, and that model: the label-error finder's test data.

Each class has its own bright horizontal band (class c: rows 6c to 6c+5); the band model's logits
sum each band's pixels, so it names every face's class with high confidence. A flipped label is then
a face whose band says one class and whose label another: exactly what the finder must catch.
"""
from pathlib import Path

import numpy as np

from fercore.classes import CLASSES

BAND = 6


def band_faces(per_class: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 faces [7 * per_class, 48, 48], true labels), class by class, each with noise."""
    rng = np.random.default_rng(seed)
    faces, labels = [], []
    for label in range(len(CLASSES)):
        for _ in range(per_class):
            face = rng.integers(20, 60, (48, 48)).astype(np.float64)
            face[label * BAND:(label + 1) * BAND] = rng.uniform(180, 255)  # its class's band, brighter or dimmer
            faces.append(face)
            labels.append(label)
    return np.clip(np.stack(faces), 0, 255).astype(np.uint8), np.asarray(labels, np.int64)


def flip(labels: np.ndarray, every: int = 14, start: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(noisy labels, flipped indices): every `every`-th face moved to another class."""
    noisy, flipped = labels.copy(), np.arange(start, len(labels), every)
    noisy[flipped] = (labels[flipped] + 1 + np.arange(len(flipped)) % (len(CLASSES) - 1)) % len(CLASSES)
    return noisy, flipped


def band_model(path: Path, version: str = "band-default") -> Path:
    """An ONNX model of the model contract (input [N, 1, 48, 48] in 0-1 -> logits [N, 7]) that reads the bands."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fercore.model_contract import contract_metadata, set_metadata

    weights = np.zeros((48, 48, len(CLASSES)), np.float32)
    for label in range(len(CLASSES)):
        weights[label * BAND:(label + 1) * BAND, :, label] = 0.2  # saturates: every face is named for sure
    weights = weights.reshape(48 * 48, len(CLASSES))
    bias = np.full(len(CLASSES), -2.0, np.float32)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["input"], ["flat"], axis=1),
         helper.make_node("Gemm", ["flat", "w", "b"], ["logits"])],
        "fer_bands",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 48, 48])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(CLASSES)])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    set_metadata(model, contract_metadata(architecture="band-reader", version=version))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, path)
    return path


def flipped_dataset(owner, name: str = "banded faces", per_class: int = 20):
    """A ready dataset of band faces with a known set of flipped labels: (dataset, true labels, flipped indices,
    item ids in face order)."""
    from ferweb.datasets.models import DatasetItem
    from ferweb.datasets.services import dataset_create_from_faces

    faces, labels = band_faces(per_class)
    noisy, flipped = flip(labels)
    dataset = dataset_create_from_faces(
        owner=owner, name=name, pixels=faces, labels=noisy, splits=["train"] * len(faces),
        source_names=[f"face_{i:03d}.png" for i in range(len(faces))], source_name="banded.zip", source_format="zip",
    )
    ids = list(DatasetItem.objects.filter(dataset=dataset).order_by("index").values_list("pk", flat=True))
    return dataset, labels, flipped, ids
