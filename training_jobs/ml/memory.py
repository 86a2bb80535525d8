"""Peak memory of a training run, estimated from measurements: no torch, so the web process can
refuse a recipe that cannot fit before a worker tries it.

The training process's peak is the larger of its two phases, plus what both hold:

    training   = base + bytes per face x batch size          (measured: the slope and intercept)
                 + 4 bytes x parameters x (optimizer slots + EMA copy - the 2 slots measured)
    evaluation = a no-grad pass of 256 faces (the trainer's evaluation batch, measured)
                 + 4 bytes x parameters x (gradients + optimizer slots + EMA copy)
    peak       = max(training, evaluation) + bytes per dataset face x faces + teacher's weights

`base` is what is left at batch 0: the interpreter with torch and the trainer loaded
(RUNTIME_BYTES), the weights, their gradients and NAdam's two slots, and the allocator's and
first step's fixed cost.

How the numbers were measured (`python -m training_jobs.ml.measure_memory --batches 32 128 256
--repeats 2 --faces 768 --steps 2 --data-slope 1000 30000`): every figure is the kernel's
high-water mark of resident memory (ru_maxrss) of a fresh Python process that ran `trainer.train`
for two full batches of random 48x48 faces (NAdam, float32, 2 threads, 800 faces of which 16
validation and 16 test, no occlusion maps), or one no-grad pass of 256 faces; each point is the
higher of two such processes. torch 2.13.0+cpu, Python 3.11, on a 2-vCPU KVM guest of an Intel
Xeon with AVX-512 and AMX. The bytes per face are fitted through the three batch sizes; repeated
measurements differ by up to ~10% (allocator timing), so estimates carry MARGIN. More threads
than the 2 measured add some per-thread scratch memory. A GPU run keeps its activations on the
device: there the estimate is of host memory as if training on the CPU, which over-states what
the host needs (set FERWEB_TRAIN_MAX_MEMORY_MB to the GPU's memory on a GPU worker).
"""
from __future__ import annotations

from dataclasses import dataclass

RUNTIME_BYTES = 328_200_000  # resident after importing torch and the trainer, before any network
DATA_BYTES_PER_FACE = 4_183  # the packed faces plus the trainer's split copies (1,000 vs 30,000 faces)
MEASURED_FACES = 800  # faces in the per-architecture measurements
MEASURED_SLOTS = 2  # NAdam keeps two tensors per parameter
MARGIN = 1.10  # measurements of the same recipe differ by up to ~10%
MAX_BATCH = 4096  # TrainConfig.batch_size's own maximum


@dataclass(frozen=True)
class Measured:
    params: int  # trainable parameters of the network measured (fercore.catalogue's params)
    train_peaks: dict  # {batch size: peak bytes of training at that batch}
    eval_peak_256: int  # bytes: peak of one no-grad pass of 256 faces (weights only, no optimizer)

    def _fit(self) -> tuple[float, float]:
        """Least-squares line through the training peaks: (bytes per face, bytes at batch 0)."""
        xs, ys = list(self.train_peaks), list(self.train_peaks.values())
        mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
        return slope, mean_y - slope * mean_x

    @property
    def bytes_per_sample(self) -> float:
        return self._fit()[0]

    @property
    def base(self) -> float:
        return self._fit()[1] - MEASURED_FACES * DATA_BYTES_PER_FACE


# Measured as the module docstring says. Each row keeps the parameter count it was measured with;
# a test checks those against the architecture catalogue (whose own test checks the networks), so a
# new or changed network is measured before it can be trained.
MEASURED: dict[str, Measured] = {
    "adapted_residual": Measured(9_766_391, {32: 829_321_216, 128: 1_343_741_952, 256: 1_824_145_408}, 629_387_264),
    "basic_cnn": Measured(4_730_423, {32: 716_320_768, 128: 1_161_060_352, 256: 1_650_307_072}, 609_148_928),
    "light_residual": Measured(551_175, {32: 686_907_392, 128: 1_187_471_360, 256: 1_621_499_904}, 667_688_960),
    "resnet34": Measured(21_279_431, {32: 1_133_428_736, 128: 1_921_871_872, 256: 2_727_768_064}, 750_333_952),
    "resnet50": Measured(23_513_543, {32: 1_474_973_696, 128: 3_349_577_728, 256: 5_261_705_216}, 990_154_752),
    "hybrid_resnet34_50": Measured(44_792_967, {32: 2_144_411_648, 128: 4_577_673_216, 256: 7_516_250_112}, 1_114_345_472),
    "compact_resnet": Measured(1_421_655, {32: 615_219_200, 128: 1_101_471_744, 256: 1_457_668_096}, 541_495_296),
    "fast_resnet": Measured(1_236_903, {32: 580_161_536, 128: 858_750_976, 256: 1_283_743_744}, 538_079_232),
}

OPTIMIZER_SLOTS = {"sgd": 1, "adam": 2, "adamw": 2, "nadam": 2, "rmsprop": 1}  # tensors per parameter


def optimizer_slots(optimizer: str, momentum: float = 0.0) -> int:
    slots = OPTIMIZER_SLOTS.get(optimizer, 2)
    if optimizer == "rmsprop" and momentum > 0:
        slots += 1  # its momentum buffer
    return slots


def estimate_bytes(*, architecture: str, batch_size: int, optimizer: str = "nadam", momentum: float = 0.0,
                   ema: bool = False, faces: int = 0, teacher_architecture: str = "") -> int:
    """Estimated peak resident bytes of a run's training process (see the module docstring).

    Raises KeyError for an architecture that was never measured.
    """
    m = MEASURED[architecture]
    weights = 4 * m.params
    extra = optimizer_slots(optimizer, momentum) + int(ema)
    training = m.base + m.bytes_per_sample * batch_size + weights * (extra - MEASURED_SLOTS)
    evaluation = m.eval_peak_256 + weights * (1 + extra)
    teacher = 4 * MEASURED[teacher_architecture].params if teacher_architecture else 0
    return int(MARGIN * (max(training, evaluation) + DATA_BYTES_PER_FACE * faces + teacher))


def max_batch_size(*, cap_bytes: int, architecture: str, limit: int = MAX_BATCH, **recipe) -> int:
    """The largest batch size whose estimate fits in cap_bytes (0 when not even 1 fits)."""
    low, high = 0, limit
    while low < high:  # the estimate grows with the batch: bisect
        middle = (low + high + 1) // 2
        if estimate_bytes(architecture=architecture, batch_size=middle, **recipe) <= cap_bytes:
            low = middle
        else:
            high = middle - 1
    return low


def max_batch_sizes(cap_bytes: int, *, faces: int, optimizer: str = "nadam") -> dict[str, int]:
    """The largest batch size of every measured architecture at 48x48, for a dataset of `faces`."""
    return {name: max_batch_size(cap_bytes=cap_bytes, architecture=name, faces=faces, optimizer=optimizer)
            for name in MEASURED}
