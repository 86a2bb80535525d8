"""The one preprocessing definition shared by import, training, evaluation, export and serving.

A face becomes a 48x48 uint8 grayscale crop (how FER2013 looks); the model sees it as
float32 [N, 1, 48, 48] scaled to [0, 1] (the model contract), and every exported model records
that scaling as its `fer.input` (MODEL_INPUT). NumPy and OpenCV only.
"""
import cv2
import numpy as np

FACE_SIZE = 48
SCALE = 1.0 / 255.0  # uint8 pixel -> [0, 1]
# What `fer.input` says in every exported model: the input that SCALE and FACE_SIZE define.
MODEL_INPUT = {"height": FACE_SIZE, "width": FACE_SIZE, "channels": 1, "scale": SCALE}
# FER2013 crops are tight around the face; detectors box a little less than that.
CROP_MARGIN = 0.1


def to_gray(image: np.ndarray) -> np.ndarray:
    """BGR, BGRA or gray uint8 -> gray uint8."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)


def resize_face(gray: np.ndarray) -> np.ndarray:
    """Any gray crop -> 48x48 uint8, area interpolation when shrinking."""
    if gray.shape == (FACE_SIZE, FACE_SIZE):
        return gray
    shrinking = gray.shape[0] > FACE_SIZE or gray.shape[1] > FACE_SIZE
    return cv2.resize(gray, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def crop_face(gray: np.ndarray, box, margin: float = CROP_MARGIN) -> np.ndarray:
    """Square crop around box (x, y, w, h) widened by margin, clipped to the image, as 48x48."""
    x, y, w, h = box
    side = int(round(max(w, h) * (1 + 2 * margin)))
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    height, width = gray.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - width, y0 + side - height)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return resize_face(gray[y0:y0 + side, x0:x0 + side])


def to_model_input(faces: np.ndarray) -> np.ndarray:
    """uint8 [N, 48, 48] -> float32 [N, 1, 48, 48] in [0, 1]."""
    faces = np.asarray(faces)
    if faces.ndim == 2:
        faces = faces[None]
    return (faces.astype(np.float32) * SCALE)[:, None, :, :]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)
