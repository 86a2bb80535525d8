"""Face detection: every face in a photo or frame, as (x, y, w, h) boxes left to right.

Detection runs on a copy downscaled to at most DETECT_MAX_SIDE pixels (the cost of a
cascade grows with the pixel count); boxes are mapped back to the original so crops
keep full resolution.
"""
from dataclasses import dataclass

import cv2
import numpy as np

from .preprocess import FACE_SIZE, to_gray

DETECT_MAX_SIDE = 320


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]
    too_small: bool = False


class FaceDetector:
    """OpenCV's frontal-face Haar cascade, shipped inside opencv-python-headless 4.x."""

    def __init__(self, min_face_size: int = 24, max_side: int = DETECT_MAX_SIDE):
        path = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise RuntimeError(f"could not load the face cascade from {path}")
        self.min_face_size = min_face_size
        self.max_side = max_side

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in a BGR or gray uint8 image, sorted left to right."""
        gray = to_gray(image)
        scale = min(1.0, self.max_side / max(gray.shape[:2]))
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        small = cv2.equalizeHist(small)
        min_side = max(12, int(min(FACE_SIZE / 2, self.min_face_size) * scale))
        boxes = self.cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=5, minSize=(min_side, min_side))
        faces = []
        for x, y, w, h in (boxes if len(boxes) else []):
            box = tuple(int(round(v / scale)) for v in (x, y, w, h))
            faces.append(Face(box=box, too_small=min(box[2], box[3]) < self.min_face_size))
        return sorted(faces, key=lambda face: face.box[0])
