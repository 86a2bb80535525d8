"""Drawn 48x48 faces whose expression is learnable from the mouth (and the eyes for surprise).

happy: mouth curved up; sad: curved down; surprise: round open mouth and wide eyes.
Position, size, brightness and noise vary so a model has to learn the shape, not a pixel.
"""
import cv2
import numpy as np

from fercore.classes import CLASS_INDEX

DRAWN_CLASSES = ("happy", "sad", "surprise")


def draw_face(kind: str, rng: np.random.Generator) -> np.ndarray:
    image = np.full((48, 48), int(rng.integers(20, 60)), np.uint8)
    cx, cy = 24 + int(rng.integers(-2, 3)), 24 + int(rng.integers(-2, 3))
    skin = int(rng.integers(150, 210))
    cv2.ellipse(image, (cx, cy), (int(rng.integers(16, 20)), int(rng.integers(19, 23))), 0, 0, 360, skin, -1)
    eye = 4 if kind == "surprise" else 2
    for dx in (-7, 7):
        cv2.circle(image, (cx + dx, cy - 6), eye, 30, -1)
    width = int(rng.integers(6, 9))
    if kind == "happy":
        cv2.ellipse(image, (cx, cy + 6), (width, 5), 0, 0, 180, 40, 2)
    elif kind == "sad":
        cv2.ellipse(image, (cx, cy + 12), (width, 5), 0, 180, 360, 40, 2)
    else:
        cv2.circle(image, (cx, cy + 10), 4, 40, -1)
    noise = rng.normal(0, 8, image.shape)
    return np.clip(image.astype(np.float32) + noise, 0, 255).astype(np.uint8)


def drawn_faces(per_class: int, seed: int = 0, classes=DRAWN_CLASSES):
    """-> (pixels uint8 [N, 48, 48], labels int64 [N] in canonical indices)."""
    rng = np.random.default_rng(seed)
    pixels, labels = [], []
    for _ in range(per_class):
        for kind in classes:
            pixels.append(draw_face(kind, rng))
            labels.append(CLASS_INDEX[kind])
    return np.stack(pixels), np.asarray(labels, dtype=np.int64)
