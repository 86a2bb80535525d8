import numpy as np
import torch
from torch import nn

from training_jobs.ml.occlusion import occlusion_maps, pick_faces_per_class


class MouthReader(nn.Module):
    """Class 3 (happy) is as likely as the mouth region (rows 32-40, cols 16-32) is bright."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(12.0))

    def forward(self, x):
        mouth = x[:, 0, 32:40, 16:32].mean(dim=(1, 2))
        logits = torch.zeros(len(x), 7)
        logits[:, 3] = self.scale * (mouth - 0.5)
        return logits


def test_occluding_the_region_the_model_reads_drops_the_true_class_most():
    faces = np.zeros((2, 48, 48), np.uint8)
    faces[:, 32:40, 16:32] = 255
    result = occlusion_maps(MouthReader(), faces, [3, 3], patch=8, stride=4)
    assert result.drops.shape == (2, 11, 11) and result.pixel_maps.shape == (2, 48, 48)
    assert result.base_probs[0] > 0.9 and result.predicted.tolist() == [3, 3]
    row, col = np.unravel_index(result.drops[0].argmax(), result.drops[0].shape)
    assert 32 <= row * 4 + 4 <= 40 and 16 <= col * 4 + 4 <= 32
    assert np.allclose(result.drops[0][:4], 0, atol=1e-6)  # the forehead does not matter
    hot = np.unravel_index(result.pixel_maps[0].argmax(), (48, 48))
    assert 32 <= hot[0] < 40 and 16 <= hot[1] < 32
    stored = result.to_json()[0]
    assert len(stored["grid"]) == 11 and len(stored["map"]) == 48


def test_it_picks_a_few_faces_of_every_class():
    labels = np.array([0] * 10 + [3] * 2 + [6] * 5)
    picked = pick_faces_per_class(labels, per_class=3, seed=0)
    assert np.bincount(labels[picked], minlength=7).tolist() == [3, 0, 0, 2, 0, 0, 3]
