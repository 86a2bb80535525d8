"""Tiny generated data for the ML library: drawn faces whose class is the shape of the mouth.

happy: the mouth curves up, sad: it curves down, surprise: it is a round open O. Head position,
size, skin tone, background and noise vary, so a model must learn the mouth, not a pixel.
"""
import cv2
import numpy as np
import pytest

from training_jobs.ml import CLASSES
from training_jobs.ml.data import TrainData

MOUTHS = ("happy", "sad", "surprise")


def drawn_face(mouth: str, rng: np.random.Generator) -> np.ndarray:
    face = np.full((48, 48), int(rng.integers(40, 110)), np.uint8)
    cx, cy = 24 + int(rng.integers(-3, 4)), 23 + int(rng.integers(-3, 4))
    cv2.ellipse(face, (cx, cy), (int(rng.integers(16, 20)), int(rng.integers(20, 23))), 0, 0, 360,
                int(rng.integers(160, 230)), -1)
    for dx in (-7, 7):
        cv2.circle(face, (cx + dx, cy - 6), 2, 25, -1)
    half_width, mouth_y = int(rng.integers(6, 10)), cy + 10
    if mouth == "happy":
        cv2.ellipse(face, (cx, mouth_y - 3), (half_width, 5), 0, 0, 180, 30, 2)
    elif mouth == "sad":
        cv2.ellipse(face, (cx, mouth_y + 3), (half_width, 5), 0, 180, 360, 30, 2)
    else:
        cv2.circle(face, (cx, mouth_y), int(rng.integers(4, 6)), 30, 2)
    noisy = face.astype(np.float32) + rng.normal(0, 7, face.shape)
    return np.clip(noisy, 0, 255).astype(np.uint8)


def drawn_faces(per_class: int, seed: int = 0, mouths=MOUTHS) -> tuple[np.ndarray, np.ndarray]:
    """-> pixels uint8 [N, 48, 48], labels int64 [N] (indices into CLASSES), classes interleaved."""
    rng = np.random.default_rng(seed)
    pixels, labels = [], []
    for _ in range(per_class):
        for mouth in mouths:
            pixels.append(drawn_face(mouth, rng))
            labels.append(CLASSES.index(mouth))
    return np.stack(pixels), np.array(labels, dtype=np.int64)


@pytest.fixture(scope="session")
def mouth_data() -> TrainData:
    """240 training faces (80 per class), no own validation or test split."""
    pixels, labels = drawn_faces(80, seed=1)
    return TrainData(pixels, labels, np.full(len(labels), "train"))
