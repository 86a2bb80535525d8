"""Occlusion sensitivity (Auliana et al., 2024): slide a grey square over the face, re-predict, and
record how much the probability of the true class drops at each position.

Large positive drops mark the regions the model relies on (mouth, eyes, brows); negative values
mark regions whose occlusion makes the true class more likely.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fercore.preprocess import to_model_input

GREY = 0.5


@dataclass
class OcclusionResult:
    drops: np.ndarray  # float32 [K, P, P]: drop of p(true class) with the square at each grid position
    pixel_maps: np.ndarray  # float32 [K, 48, 48]: mean drop over the squares covering each pixel
    base_probs: np.ndarray  # float32 [K]: p(true class) of the untouched face
    predicted: np.ndarray  # int64 [K]: top-1 class of the untouched face
    patch: int
    stride: int

    def to_json(self) -> list[dict]:
        """One dict per face, rounded, for storing with a run and drawing as a heatmap."""
        return [
            {"base_prob": round(float(self.base_probs[k]), 4), "predicted": int(self.predicted[k]),
             "patch": self.patch, "stride": self.stride,
             "grid": np.round(self.drops[k], 4).tolist(), "map": np.round(self.pixel_maps[k], 4).tolist()}
            for k in range(len(self.base_probs))
        ]


@torch.no_grad()
def occlusion_maps(model: nn.Module, faces, labels, patch: int = 8, stride: int = 4,
                   batch_size: int = 256, temperature: float = 1.0) -> OcclusionResult:
    """faces uint8 [K, 48, 48], labels [K] -> OcclusionResult (see its fields)."""
    faces = np.asarray(faces, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    k, h, w = faces.shape
    if not 0 < patch <= min(h, w) or stride < 1:
        raise ValueError(f"patch must be 1..{min(h, w)} and stride at least 1, got patch {patch}, stride {stride}")
    device = next(model.parameters()).device
    model.eval()
    ys = list(range(0, h - patch + 1, stride))
    xs = list(range(0, w - patch + 1, stride))
    positions = [(y, x) for y in ys for x in xs]
    x0 = torch.from_numpy(to_model_input(faces))

    def true_prob(batch: torch.Tensor, cls: torch.Tensor) -> torch.Tensor:
        out = []
        for start in range(0, len(batch), batch_size):
            logits = model(batch[start:start + batch_size].to(device)).float().cpu() / temperature
            out.append(torch.softmax(logits, dim=1))
        probs = torch.cat(out)
        return probs[torch.arange(len(probs)), cls], probs.argmax(1)

    base, predicted = true_prob(x0, torch.from_numpy(labels))
    drops = np.zeros((k, len(ys), len(xs)), dtype=np.float32)
    pixel_sum = np.zeros((k, h, w), dtype=np.float32)
    pixel_count = np.zeros((h, w), dtype=np.float32)
    for y, x in positions:
        pixel_count[y:y + patch, x:x + patch] += 1
    for i in range(k):
        variants = x0[i:i + 1].repeat(len(positions), 1, 1, 1)
        for j, (y, x) in enumerate(positions):
            variants[j, :, y:y + patch, x:x + patch] = GREY
        probs, _ = true_prob(variants, torch.full((len(positions),), int(labels[i])))
        drop = (base[i] - probs).numpy()
        drops[i] = drop.reshape(len(ys), len(xs))
        for j, (y, x) in enumerate(positions):
            pixel_sum[i, y:y + patch, x:x + patch] += drop[j]
    pixel_maps = np.divide(pixel_sum, pixel_count, out=np.zeros_like(pixel_sum), where=pixel_count > 0)
    return OcclusionResult(drops=drops, pixel_maps=pixel_maps, base_probs=base.numpy().astype(np.float32),
                           predicted=predicted.numpy(), patch=patch, stride=stride)


def pick_faces_per_class(labels, per_class: int = 3, seed: int = 0) -> np.ndarray:
    """Indices of up to `per_class` faces of every class present, seeded, for occlusion maps."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    picked = []
    for cls in np.unique(labels):
        members = np.flatnonzero(labels == cls)
        picked.extend(sorted(rng.choice(members, size=min(per_class, len(members)), replace=False)))
    return np.array(picked, dtype=np.int64)
