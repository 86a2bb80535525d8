"""The fer.* metadata of the model contract: written once, read back the same, defaults from the contract."""
import json

import onnx
import pytest

from fercore.classes import CLASSES
from fercore.model_contract import (
    ModelMetadata, contract_metadata, get_metadata, parse_metadata, read_metadata, set_metadata,
)
from fercore.preprocess import MODEL_INPUT
from inference.synthetic import contract_model


def test_the_metadata_says_what_the_contract_says():
    props = contract_metadata(architecture="fast_resnet", version="v3", metrics={"accuracy": 0.7},
                              extra={"fer.temperature": "1.5"})
    assert list(props) == ["fer.classes", "fer.input", "fer.architecture", "fer.version", "fer.metrics",
                           "fer.temperature"]
    assert json.loads(props["fer.classes"]) == list(CLASSES)
    assert json.loads(props["fer.input"]) == {"height": 48, "width": 48, "channels": 1, "scale": 1 / 255}
    meta = parse_metadata(props)
    assert (meta.classes, meta.input, meta.architecture, meta.version, meta.metrics) == (
        CLASSES, MODEL_INPUT, "fast_resnet", "v3", {"accuracy": 0.7})
    assert meta.props["fer.temperature"] == "1.5"


def test_a_model_without_metadata_reads_as_the_contracts_defaults():
    assert parse_metadata({}) == ModelMetadata()
    assert parse_metadata({}).classes == CLASSES and parse_metadata({}).input == MODEL_INPUT


def test_set_metadata_replaces_what_a_file_held_and_reads_back(tmp_path):
    path = contract_model(tmp_path / "m.onnx", version="before", metadata={"other": "x"})
    model = onnx.load(str(path))
    props = get_metadata(model)
    assert props["fer.version"] == "before" and props["other"] == "x"
    set_metadata(model, {**props, "fer.version": "after"})
    onnx.save(model, str(path))
    assert read_metadata(path) == {**props, "fer.version": "after"}
    assert [p.key for p in onnx.load(str(path)).metadata_props].count("fer.version") == 1


@pytest.mark.parametrize("key", ["fer.classes", "fer.input", "fer.metrics"])
def test_json_properties_that_are_not_json_are_an_error_not_a_guess(key):
    with pytest.raises(ValueError):
        parse_metadata({key: "not json"})
