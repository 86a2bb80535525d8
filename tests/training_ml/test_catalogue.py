"""The architecture catalogue (plain data, for the web) against the networks themselves."""
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from fercore import catalogue
from training_jobs.ml.architectures import ARCHITECTURES, BUILDERS, build_model, count_parameters


def multiply_adds(model: nn.Module) -> int:
    """Multiply-adds of the convolutions and dense layers for one face, counted by forward hooks."""
    total = 0

    def conv(module, inputs, output):
        nonlocal total
        per_output = module.in_channels // module.groups * module.kernel_size[0] * module.kernel_size[1]
        total += output[0].numel() * per_output

    def dense(module, inputs, output):
        nonlocal total
        total += output[0].numel() * module.in_features

    hooks = [m.register_forward_hook(conv if isinstance(m, nn.Conv2d) else dense)
             for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, *catalogue.INPUT_SHAPE))
    for hook in hooks:
        hook.remove()
    return total


def test_every_network_has_an_entry_and_every_entry_a_network():
    assert sorted(BUILDERS) == sorted(catalogue.NAMES)
    assert list(ARCHITECTURES) == list(catalogue.NAMES)


@pytest.mark.parametrize("name", catalogue.NAMES)
def test_the_recorded_counts_are_the_networks_own(name):
    model = build_model(name).eval()
    measured = {"params": count_parameters(model), "macs": multiply_adds(model)}
    entry = catalogue.get(name)
    recorded = {"params": entry.params, "macs": entry.macs}
    assert measured == recorded, f"record params={measured['params']:_}, macs={measured['macs']:_} for {name}"


def test_the_hook_counter_agrees_with_torchs_flop_counter():
    # FlopCounterMode counts 2 FLOPs per multiply-add of the same layers.
    for name in ("fast_resnet", "hybrid_resnet34_50"):
        model = build_model(name).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, *catalogue.INPUT_SHAPE))
        assert counter.get_total_flops() == 2 * multiply_adds(model) == 2 * catalogue.get(name).macs


def test_the_networks_take_their_descriptions_from_the_catalogue():
    for name, spec in ARCHITECTURES.items():
        entry = catalogue.get(name)
        assert (spec.description, spec.source) == (entry.description, entry.source)
        assert entry.description and "\n" not in entry.description


def test_an_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="light_residual"):
        catalogue.get("vgg99")


def test_the_api_shape_names_the_count_as_runs_do():
    rows = {row["name"]: row for row in catalogue.catalogue()}
    assert rows["adapted_residual"]["param_count"] == 9_766_391  # the 2022 paper's trainable count
    assert set(rows["fast_resnet"]) == {"name", "description", "source", "param_count", "macs"}
