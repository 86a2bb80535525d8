"""Where single predictions and webcam frames run: in the web process, on a bounded thread pool.

Why here and not through Celery: the same frame through a Celery task answering over the
channel layer took 5.1 ms against 2.0 ms in process (`manage.py benchmark_inference` prints
both; inference/README.md), and a worker of the shared `inference` queue may be busy with a
video job for minutes, during which frames would wait. ONNX Runtime, OpenCV and the
TFLite interpreter release the GIL, so two threads use both cores. Admission is bounded: past FERWEB_SERVE_MAX_PENDING waiting requests a frame is
dropped (webcam) or the request answered 503 (API), never queued without bound.
"""
import base64
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
from django.conf import settings

from fercore.images import decode_image

from .engine import Prediction, get_engine


class Busy(Exception):
    code = "busy"


class Admission:
    """A counter of requests inside the pipeline; refuses instead of waiting when full."""

    def __init__(self, limit: int):
        self.limit = limit
        self._count = 0
        self._lock = threading.Lock()

    def __enter__(self):
        with self._lock:
            if self._count >= self.limit:
                raise Busy(f"The server is busy ({self.limit} predictions in progress); try again shortly.")
            self._count += 1
        return self

    def __exit__(self, *exc):
        with self._lock:
            self._count -= 1


_pool: ThreadPoolExecutor | None = None
_admission: Admission | None = None
_setup_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    global _pool
    if _pool is None:
        with _setup_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=settings.FERWEB_SERVE_THREADS, thread_name_prefix="ferweb-serve")
    return _pool


def admission() -> Admission:
    global _admission
    if _admission is None:
        with _setup_lock:
            if _admission is None:
                _admission = Admission(settings.FERWEB_SERVE_MAX_PENDING)
    return _admission


def predict_bytes(data: bytes, model_path, *, thorough: bool = True) -> Prediction:
    """Decode + detect + classify one uploaded image (raises ImageDecodeError, ModelUnavailable)."""
    engine = get_engine()
    t0 = time.perf_counter()
    image = decode_image(data, max_pixels=settings.FERWEB_MAX_IMAGE_PIXELS)
    decode_ms = (time.perf_counter() - t0) * 1000
    return engine.predict_image(image, model_path, decode_ms=decode_ms, thorough=thorough)


def annotate(data: bytes, faces: list[dict]) -> str:
    """The image with a box and label per face, as base64 PNG (downscaled to 1024 px at most)."""
    image = decode_image(data, max_pixels=settings.FERWEB_MAX_IMAGE_PIXELS, color=True)
    scale = min(1.0, 1024 / max(image.shape[:2]))
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    thickness = max(2, int(round(max(image.shape[:2]) / 400)))
    for face in faces:
        x, y, w, h = (int(round(v * scale)) for v in face["box"])
        color = (0, 200, 255) if face.get("too_small") else (80, 200, 60)
        cv2.rectangle(image, (x, y), (x + w, y + h), color, thickness)
        text = f"{face['label']} {face['probabilities'][face['label']]:.0%}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
        top = max(0, y - th - 8)
        cv2.rectangle(image, (x, top), (x + tw + 6, top + th + 8), color, -1)
        cv2.putText(image, text, (x + 3, top + th + 3), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1, cv2.LINE_AA)
    ok, buf = cv2.imencode(".png", image)
    return base64.b64encode(np.asarray(buf).tobytes()).decode("ascii")
