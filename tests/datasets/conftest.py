"""Small drawn test data: faces with OpenCV, zips and CSVs built in tmp_path."""
import io
import stat
import zipfile

import cv2
import numpy as np
import pytest

from fercore.classes import CLASSES

# Mouth curvature per class, so the faces of a class look alike and differ from the others.
MOODS = {"angry": -1.0, "disgust": -0.6, "fear": -0.2, "happy": 1.0, "sad": -1.4, "surprise": 0.3, "neutral": 0.0}


def draw_face(size: int = 48, mood: float = 0.0, seed: int = 0) -> np.ndarray:
    """A gray face the Haar cascade accepts at 150 px and more: head, brows, eyes, nose, mouth curve."""
    rng = np.random.default_rng(seed)
    s = size / 100.0
    img = np.full((size, size), int(rng.integers(40, 80)), np.uint8)
    cx, cy = size // 2, size // 2
    cv2.ellipse(img, (cx, cy), (int(38 * s), int(48 * s)), 0, 0, 360, int(rng.integers(170, 200)), -1)
    for dx in (-1, 1):
        cv2.line(img, (int(cx + dx * 26 * s), int(cy - 22 * s)), (int(cx + dx * 8 * s), int(cy - 24 * s)), 60,
                 max(1, int(4 * s)))
        cv2.ellipse(img, (int(cx + dx * 17 * s), int(cy - 12 * s)), (max(1, int(9 * s)), max(1, int(5 * s))), 0, 0,
                    360, 50, -1)
        cv2.circle(img, (int(cx + dx * 17 * s), int(cy - 12 * s)), max(1, int(3 * s)), 15, -1)
    cv2.line(img, (cx, int(cy - 8 * s)), (int(cx - 4 * s), int(cy + 10 * s)), 130, max(1, int(3 * s)))
    mouth = [[int(cx + x * s), int(cy + 26 * s + mood * (x * x / 400.0 - 0.5) * 10 * s)] for x in range(-18, 19, 3)]
    cv2.polylines(img, [np.array(mouth, np.int32)], False, 60, max(1, int(4 * s)))
    img = cv2.GaussianBlur(img, (0, 0), max(0.5, 1.5 * s))
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def encode(image: np.ndarray, ext: str = ".png") -> bytes:
    ok, data = cv2.imencode(ext, image)
    assert ok
    return data.tobytes()


def photo(faces: int = 2, seed: int = 0, size=(480, 640), face_size: int = 170) -> bytes:
    """A colour JPEG photo with `faces` drawn faces side by side on a textured background."""
    rng = np.random.default_rng(seed)
    height, width = size
    canvas = rng.integers(90, 140, (height, width, 3), dtype=np.uint8)
    canvas = cv2.GaussianBlur(canvas, (0, 0), 3)
    gap = width // max(1, faces)
    for k in range(faces):
        face = cv2.cvtColor(draw_face(face_size, mood=1.0 - k, seed=seed * 10 + k), cv2.COLOR_GRAY2BGR)
        x, y = k * gap + (gap - face_size) // 2, (height - face_size) // 2 + (k % 2) * 20
        canvas[y:y + face_size, x:x + face_size] = (face * np.array([0.8, 0.9, 1.0])).astype(np.uint8)
    return encode(canvas, ".jpg")


def class_tree(per_class: int = 3, classes=CLASSES, splits=("",), seed: int = 0, ext: str = ".png") -> dict:
    """{member path: bytes} for `<split>/<class>/<name>` layouts (split "" -> no split folder)."""
    files, n = {}, seed * 1000
    for split in splits:
        for name in classes:
            for i in range(per_class):
                n += 1
                prefix = f"{split}/" if split else ""
                files[f"{prefix}{name}/{name}_{n}{ext}"] = encode(draw_face(48, MOODS.get(name, 0.0), seed=n), ext)
    return files


def make_zip(path, files: dict, symlinks: dict | None = None, compression=zipfile.ZIP_DEFLATED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return path


def fer_csv(rows: int = 14, usages=("Training", "PublicTest")) -> str:
    """A FER2013-style CSV: emotion,pixels,Usage with `rows` drawn faces."""
    lines = ["emotion,pixels,Usage"]
    for i in range(rows):
        label = i % len(CLASSES)
        face = draw_face(48, MOODS[CLASSES[label]], seed=500 + i)
        lines.append(f"{label},{' '.join(str(v) for v in face.ravel())},{usages[i % len(usages)]}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def upload(django_capture_on_commit_callbacks):
    """POST a dataset and run its import the way the queue would, in this process (eager)."""
    from ferweb.celery import app

    def post(client, name: str, data: bytes, filename: str = "faces.zip", **fields):
        app.conf.task_always_eager = True
        try:
            with django_capture_on_commit_callbacks(execute=True):
                response = client.post(
                    "/api/datasets/", {"name": name, "file": _named(data, filename), **fields}, format="multipart"
                )
        finally:
            app.conf.task_always_eager = False
        return response

    return post


def _named(data: bytes, filename: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(filename, data)


def zip_bytes(files: dict, **kwargs) -> bytes:
    buffer = io.BytesIO()
    make_zip(buffer, files, **kwargs)
    return buffer.getvalue()
