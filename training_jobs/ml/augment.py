"""Augmentation of whole batches of tensors, so that the CPU is not busy with per-image work.

One random affine matrix per face (flip, rotation, shift, zoom) and a single `grid_sample` call
for the batch; brightness and contrast as per-face scalars; random erasing as a vectorised mask.
All draws come from the `torch.Generator` passed in, so a seed fixes the result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentParams:
    hflip: bool = True
    rotation_deg: float = 10.0
    shift: float = 0.1
    zoom: float = 0.1
    brightness: float = 0.2
    contrast: float = 0.2
    erasing_prob: float = 0.0

    @classmethod
    def from_config(cls, config) -> "AugmentParams":
        return cls(**{name: getattr(config, name) for name in cls.__dataclass_fields__})

    @property
    def geometric(self) -> bool:
        return self.hflip or self.rotation_deg > 0 or self.shift > 0 or self.zoom > 0


def _uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator) * (high - low) + low


def random_affine(x: torch.Tensor, params: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    """Flip, rotate, shift and zoom each face of [N, C, H, W] by its own random amounts."""
    n = x.shape[0]
    angle = _uniform(n, -params.rotation_deg, params.rotation_deg, generator) * (math.pi / 180)
    # Zoom in by s means sampling a window 1/s as large.
    scale = 1.0 / _uniform(n, 1 - params.zoom, 1 + params.zoom, generator)
    # grid coordinates span [-1, 1], so a shift of a fraction f of the side is 2f.
    tx = _uniform(n, -params.shift, params.shift, generator) * 2
    ty = _uniform(n, -params.shift, params.shift, generator) * 2
    flip = torch.ones(n)
    if params.hflip:
        flip = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([
        torch.stack([cos * flip, -sin, tx], dim=1),
        torch.stack([sin * flip, cos, ty], dim=1),
    ], dim=1).to(x.device, x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # Border padding: FER crops have face or hair up to the edge, black corners would be a cue.
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_photometric(x: torch.Tensor, params: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    n = x.shape[0]
    if params.contrast > 0:
        factor = _uniform(n, 1 - params.contrast, 1 + params.contrast, generator).to(x.device).view(n, 1, 1, 1)
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * factor + mean
    if params.brightness > 0:
        x = x + _uniform(n, -params.brightness, params.brightness, generator).to(x.device).view(n, 1, 1, 1)
    return x.clamp(0.0, 1.0)


def random_erasing(x: torch.Tensor, prob: float, generator: torch.Generator,
                   area=(0.02, 0.25), ratio=(0.3, 3.3)) -> torch.Tensor:
    """Replace one random rectangle per chosen face with uniform noise (occlusion robustness)."""
    n, _, h, w = x.shape
    chosen = torch.rand(n, generator=generator) < prob
    if not chosen.any():
        return x
    target = _uniform(n, *area, generator) * h * w
    log_r = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator)
    aspect = torch.exp(log_r)
    eh = torch.sqrt(target * aspect).clamp(1, h).round()
    ew = torch.sqrt(target / aspect).clamp(1, w).round()
    top = (torch.rand(n, generator=generator) * (h - eh + 1)).floor()
    left = (torch.rand(n, generator=generator) * (w - ew + 1)).floor()
    rows = torch.arange(h).view(1, h, 1)
    cols = torch.arange(w).view(1, 1, w)
    mask = ((rows >= top.view(n, 1, 1)) & (rows < (top + eh).view(n, 1, 1))
            & (cols >= left.view(n, 1, 1)) & (cols < (left + ew).view(n, 1, 1)) & chosen.view(n, 1, 1))
    noise = torch.rand(x.shape, generator=generator)
    mask = mask.unsqueeze(1).expand_as(x).to(x.device)
    return torch.where(mask, noise.to(x.device, x.dtype), x)


def augment_batch(x: torch.Tensor, params: AugmentParams, generator: torch.Generator) -> torch.Tensor:
    """float [N, 1, H, W] in [0, 1] -> an augmented batch of the same shape, dtype and device."""
    if params.geometric:
        x = random_affine(x, params, generator)
    if params.brightness > 0 or params.contrast > 0:
        x = random_photometric(x, params, generator)
    if params.erasing_prob > 0:
        x = random_erasing(x, params.erasing_prob, generator)
    return x


def mix_batch(x: torch.Tensor, y_soft: torch.Tensor, *, mixup_alpha: float, cutmix_alpha: float,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup or CutMix (one of the two per batch, at random when both are on) on soft targets."""
    modes = [m for m, a in (("mixup", mixup_alpha), ("cutmix", cutmix_alpha)) if a > 0]
    if not modes:
        return x, y_soft
    mode = modes[int(torch.randint(len(modes), (1,), generator=generator))]
    alpha = mixup_alpha if mode == "mixup" else cutmix_alpha
    # torch has no seeded Beta sampler; seed NumPy's from our generator.
    seed = int(torch.randint(2**31 - 1, (1,), generator=generator))
    lam = float(np.random.default_rng(seed).beta(alpha, alpha))
    perm = torch.randperm(x.shape[0], generator=generator).to(x.device)
    if mode == "mixup":
        x = lam * x + (1 - lam) * x[perm]
    else:
        _, _, h, w = x.shape
        cut = math.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, (1,), generator=generator)), int(torch.randint(w, (1,), generator=generator))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, y0:y1, x0:x1] = x[perm][:, :, y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    return x, lam * y_soft + (1 - lam) * y_soft[perm]
