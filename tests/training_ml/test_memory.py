"""The memory table: measured for every architecture there is, and an estimate that behaves."""
import pytest

from fercore import catalogue
from training_jobs.ml import memory

GIB = 1024**3


def test_every_architecture_was_measured_as_it_is_now():
    """A new or changed network needs new measurements (python -m training_jobs.ml.measure_memory)."""
    assert set(memory.MEASURED) == set(catalogue.NAMES)
    for name, measured in memory.MEASURED.items():
        assert measured.params == catalogue.get(name).params, name
        assert measured.bytes_per_sample > 0 and measured.base > memory.RUNTIME_BYTES, name


@pytest.mark.parametrize("architecture", sorted(memory.MEASURED))
def test_the_largest_batch_that_fits_is_exactly_that(architecture):
    for cap in (2 * GIB, 8 * GIB):
        fits = memory.max_batch_size(cap_bytes=cap, architecture=architecture, faces=35_887)
        assert 0 < fits <= memory.MAX_BATCH
        assert memory.estimate_bytes(architecture=architecture, batch_size=fits, faces=35_887) <= cap
        if fits < memory.MAX_BATCH:
            assert memory.estimate_bytes(architecture=architecture, batch_size=fits + 1, faces=35_887) > cap


def test_bigger_networks_fit_smaller_batches():
    fits = memory.max_batch_sizes(8 * GIB, faces=35_887)
    assert fits["hybrid_resnet34_50"] < fits["resnet50"] < fits["resnet34"] < fits["adapted_residual"]
    assert memory.max_batch_size(cap_bytes=100 * 1024**2, architecture="fast_resnet") == 0


def test_optimizers_hold_their_slots():
    assert memory.optimizer_slots("sgd") == 1 and memory.optimizer_slots("adamw") == 2
    assert memory.optimizer_slots("rmsprop", momentum=0.9) == 2 and memory.optimizer_slots("rmsprop") == 1
