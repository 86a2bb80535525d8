"""The networks FERWeb can train, in a registry selectable by name (`fercore.catalogue` lists
them as plain data for the web, which never imports this module).

Every model takes float32 [N, 1, 48, 48] in [0, 1] and returns logits [N, 7] (FER2013 class
order). Each keeps its last layer(s) in `self.classifier` so that transfer learning can freeze
everything else (`set_backbone_trainable`) and load weights whose head does not fit
(`load_init_checkpoint`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from fercore import catalogue

NUM_CLASSES = 7


# ---------------------------------------------------------------- building blocks

class PlainConv(nn.Sequential):
    """Conv (with bias) -> ReLU -> BatchNorm: the 2022 paper puts BN after the activation here."""

    def __init__(self, cin: int, cout: int, kernel: int = 3):
        super().__init__(nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.ReLU(inplace=True), nn.BatchNorm2d(cout))


class IdentityResidual(nn.Module):
    """conv-BN-ReLU, conv-BN, + input, ReLU: the 2022 paper's block (BN before the activation)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + x)


def zero_init_residuals(model: nn.Module) -> nn.Module:
    """Last BN of every ResNet branch starts at 0, so each block starts as the identity.

    Deep ResNets then begin with bounded activations and train more smoothly (Goyal et al., 2017).
    """
    for module in model.modules():
        if isinstance(module, BasicBlock):
            nn.init.zeros_(module.bn2.weight)
        elif isinstance(module, Bottleneck):
            nn.init.zeros_(module.bn3.weight)
    return model


def he_init(model: nn.Module) -> nn.Module:
    """He-normal weights, zero biases, BN at (1, 0): the papers' initialisation."""
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    return model


# ---------------------------------------------------------------- Bah & Xue (2022)

class AdaptedResidual(nn.Module):
    """Table 1 of Bah & Xue (2022); with residual=False it is their "basic" CNN.

    Steps: two 5x5/16 convs; two 3x3/32 convs + pool (48->24); residual 32; two 64 convs + pool
    (->12); two 128 convs + pool (->6); residual 128; two 256 convs + pool (->3); two 512 convs +
    pool (->1); residual 512; global average pooling; dense 7. Dropout 0.3 after each conv pair,
    0.4 after the last. 9,766,391 trainable parameters with the residual blocks, 4,730,423 without.
    """

    def __init__(self, residual: bool = True, num_classes: int = NUM_CLASSES):
        super().__init__()

        def maybe_res(channels):
            return [IdentityResidual(channels)] if residual else []

        pool = lambda: nn.MaxPool2d(2)  # noqa: E731
        self.features = nn.Sequential(
            PlainConv(1, 16, 5), PlainConv(16, 16, 5), nn.Dropout(0.3),
            PlainConv(16, 32), PlainConv(32, 32), pool(), nn.Dropout(0.3),
            *maybe_res(32),
            PlainConv(32, 64), PlainConv(64, 64), pool(), nn.Dropout(0.3),
            PlainConv(64, 128), PlainConv(128, 128), pool(), nn.Dropout(0.3),
            *maybe_res(128),
            PlainConv(128, 256), PlainConv(256, 256), pool(), nn.Dropout(0.3),
            PlainConv(256, 512), PlainConv(512, 512), pool(), nn.Dropout(0.4),
            *maybe_res(512),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.classifier = nn.Linear(512, num_classes)
        he_init(self)

    def forward(self, x):
        return self.classifier(self.features(x))


# ---------------------------------------------------------------- Mutaliyev & Kalpeyeva (2026)

class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class LightResidual(nn.Module):
    """The 2026 lightweight network: three residual stages of 32, 64 and 128 filters.

    The paper gives the three blocks and the total (552,455 parameters) but not every layer, so
    we follow the 2022 design the same authors build on: each stage is a 3x3 conv that sets the
    width (BN after the activation), an identity residual block of two 3x3 convs (BN before the
    activation) and a 2x2 max pool (48 -> 24 -> 12 -> 6). The head is global average pooling,
    dense 512 + ReLU, dropout 0.4 and dense 7. That gives 551,175 trainable parameters (-0.2%).
    """

    def __init__(self, num_classes: int = NUM_CLASSES, widths=(32, 64, 128), hidden: int = 512):
        super().__init__()
        layers, cin = [], 1
        for width in widths:
            layers += [PlainConv(cin, width), IdentityResidual(width), nn.MaxPool2d(2), nn.Dropout(0.2)]
            cin = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(
            nn.Linear(cin, hidden), nn.ReLU(inplace=True), nn.Dropout(0.4), nn.Linear(hidden, num_classes)
        )
        he_init(self)

    def forward(self, x):
        return self.classifier(self.features(x))


# ---------------------------------------------------------------- ResNets for 48x48x1 (Auliana et al., 2024)

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(cin, cout, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int = 1):
        super().__init__()
        cout = planes * self.expansion
        self.conv1 = nn.Conv2d(cin, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = _projection(cin, cout, stride)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + self.shortcut(x))


def _projection(cin: int, cout: int, stride: int) -> nn.Module:
    if stride == 1 and cin == cout:
        return nn.Identity()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class ResNetBackbone(nn.Module):
    """He et al.'s ResNet for 48x48 grayscale faces.

    The ImageNet stem (7x7 stride 2 + max pool, 224 -> 56) would leave 12x12 from a 48x48 face, so
    the stem is a 3x3/64 stride-1 conv and one 2x2 max pool (48 -> 24); the four stages then run at
    24, 12, 6 and 3 pixels. Output: globally pooled features of size `out_features`.
    """

    def __init__(self, block, layers: tuple[int, int, int, int]):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True), nn.MaxPool2d(2)
        )
        stages, cin = [], 64
        for index, (planes, blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stride = 1 if index == 0 else 2
            stage = []
            for b in range(blocks):
                stage.append(block(cin, planes, stride if b == 0 else 1))
                cin = planes * block.expansion
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = cin

    def forward(self, x):
        return self.pool(self.stages(self.stem(x)))


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.features = ResNetBackbone(block, layers)
        self.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(self.features.out_features, num_classes))
        zero_init_residuals(he_init(self))

    def forward(self, x):
        return self.classifier(self.features(x))


class HybridResNet(nn.Module):
    """ResNet34 and ResNet50 on the same face; their pooled features (512 + 2048) are concatenated
    and classified together (feature fusion, Auliana et al., 2024)."""

    def __init__(self, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.resnet34 = ResNetBackbone(BasicBlock, (3, 4, 6, 3))
        self.resnet50 = ResNetBackbone(Bottleneck, (3, 4, 6, 3))
        fused = self.resnet34.out_features + self.resnet50.out_features
        self.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(fused, num_classes))
        zero_init_residuals(he_init(self))

    def forward(self, x):
        return self.classifier(torch.cat([self.resnet34(x), self.resnet50(x)], dim=1))


class CompactResNet(nn.Module):
    """FERWeb's own CPU-oriented design: spend the compute where the features are rich, not where
    the image is large.

    Steps: a 3x3/32 conv at 48x48, a stride-2 3x3/32 conv (-> 24x24), one residual block of 64
    at 24x24, two of 128 at 12x12 and one of 240 at 6x6 (ResNet basic blocks, projection
    shortcuts where the width or size changes), global average pooling, dropout 0.3, dense 7.
    About the multiply-adds of light_residual (~0.14 G per face) with 2.6x its parameters
    (1,421,655), nine conv layers deep.
    """

    def __init__(self, num_classes: int = NUM_CLASSES, widths=(32, 64, 128, 240), blocks=(1, 2, 1)):
        super().__init__()
        stem = widths[0]
        layers = [
            nn.Conv2d(1, stem, 3, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
            nn.Conv2d(stem, stem, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(stem), nn.ReLU(inplace=True),
        ]
        cin = stem
        for stage, (width, count) in enumerate(zip(widths[1:], blocks)):
            for b in range(count):
                layers.append(BasicBlock(cin, width, 2 if b == 0 and stage > 0 else 1))
                cin = width
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Sequential(nn.Dropout(0.3), nn.Linear(cin, num_classes))
        zero_init_residuals(he_init(self))

    def forward(self, x):
        return self.classifier(self.features(x))


# ---------------------------------------------------------------- registry

@dataclass(frozen=True)
class ArchitectureSpec:
    name: str
    description: str
    builder: Callable[[], nn.Module]
    source: str = ""


BUILDERS: dict[str, Callable[[], nn.Module]] = {
    "adapted_residual": lambda: AdaptedResidual(residual=True),
    "basic_cnn": lambda: AdaptedResidual(residual=False),
    "light_residual": LightResidual,
    "resnet34": lambda: ResNet(BasicBlock, (3, 4, 6, 3)),
    "resnet50": lambda: ResNet(Bottleneck, (3, 4, 6, 3)),
    "hybrid_resnet34_50": HybridResNet,
    "compact_resnet": CompactResNet,
    "fast_resnet": lambda: CompactResNet(widths=(32, 32, 64, 128, 256), blocks=(1, 1, 1, 1)),
}

# Names, descriptions and sources come from the catalogue, the plain data that the web reads
# without torch; tests/training_ml/test_catalogue.py checks its recorded sizes against these networks.
ARCHITECTURES: dict[str, ArchitectureSpec] = {
    name: ArchitectureSpec(name, entry.description, BUILDERS[name], entry.source)
    for name, entry in catalogue.ARCHITECTURES.items()
}


def build_model(name: str) -> nn.Module:
    try:
        spec = ARCHITECTURES[name]
    except KeyError:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}") from None
    return spec.builder()


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters (BN running statistics are buffers and do not count)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------- transfer learning

def backbone_parameters(model: nn.Module):
    head = {id(p) for p in model.classifier.parameters()}
    return [p for p in model.parameters() if id(p) not in head]


def set_backbone_trainable(model: nn.Module, trainable: bool) -> None:
    """Freeze or unfreeze everything but `model.classifier`.

    While frozen, call `freeze_backbone_statistics(model)` after each `model.train()` so the
    BatchNorm statistics of the frozen layers stay as loaded.
    """
    for p in backbone_parameters(model):
        p.requires_grad_(trainable)


def freeze_backbone_statistics(model: nn.Module) -> None:
    head = set(model.classifier.modules())
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module not in head:
            module.eval()


@dataclass
class LoadReport:
    loaded: list[str]
    skipped: list[str]
    adapted: list[str]

    def summary(self) -> str:
        text = f"loaded {len(self.loaded)} tensors"
        if self.adapted:
            text += f", adapted {len(self.adapted)} (RGB to grayscale)"
        if self.skipped:
            text += f", skipped {len(self.skipped)} that do not fit ({', '.join(self.skipped[:4])}" + (
                ", ..." if len(self.skipped) > 4 else "") + ")"
        return text


def extract_state_dict(checkpoint) -> dict[str, torch.Tensor]:
    """Our checkpoints ({"model": state_dict, ...}), Lightning-style {"state_dict": ...} or a bare state_dict."""
    if isinstance(checkpoint, dict):
        for key in ("model", "state_dict", "model_state_dict"):
            if key in checkpoint and isinstance(checkpoint[key], dict):
                checkpoint = checkpoint[key]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ValueError("checkpoint holds no state_dict (expected a dict of tensors, or one under 'model')")
    # DataParallel and torch.compile prefixes.
    return {k.removeprefix("module.").removeprefix("_orig_mod."): v for k, v in checkpoint.items()}


def load_init_checkpoint(model: nn.Module, path: str | Path) -> LoadReport:
    """Load every tensor whose name and shape fit; 3-channel first convs are summed to 1 channel.

    A head trained for another number of classes is skipped and keeps its fresh initialisation.
    Raises ValueError if nothing at all fits (wrong architecture).
    """
    checkpoint = torch.load(Path(path), map_location="cpu", weights_only=True)
    incoming = extract_state_dict(checkpoint)
    own = model.state_dict()
    loaded, skipped, adapted, merged = [], [], [], {}
    for name, tensor in incoming.items():
        target = own.get(name)
        if target is None:
            skipped.append(name)
            continue
        if tensor.shape != target.shape:
            # ImageNet-style first conv: [out, 3, k, k] -> [out, 1, k, k] keeps the response to gray input.
            if (tensor.ndim == 4 and tensor.shape[1] == 3 and target.shape[1] == 1
                    and tensor.shape[0] == target.shape[0] and tensor.shape[2:] == target.shape[2:]):
                tensor = tensor.sum(dim=1, keepdim=True)
                adapted.append(name)
            else:
                skipped.append(name)
                continue
        merged[name] = tensor.to(target.dtype)
        loaded.append(name)
    if not any(not k.endswith("num_batches_tracked") for k in loaded):
        raise ValueError("no tensor of the checkpoint fits this architecture; was it trained with another one?")
    model.load_state_dict(merged, strict=False)
    return LoadReport(loaded=loaded, skipped=skipped, adapted=adapted)
