"""Labeling fixtures: photos built in the test.

The photos carry real FER2013 faces, upscaled and placed on cluttered colour canvases,
so detection runs on faces like the ones users label. Where the FER2013 zip is not on
the machine, drawn faces stand in.
"""
import io
import zipfile

import cv2
import numpy as np
import pytest

from inference.synthetic import FER_ZIP, clutter, draw_face, exif_jpeg, fer_faces, jpeg, upscale

FACE_SIDE = 180  # pixels on the canvas
CANVAS = (480, 640)  # height, width


_FACES = None


def source_faces() -> list[np.ndarray]:
    """Six 48x48 gray faces: FER2013 training faces when the zip is there, drawn ones otherwise."""
    global _FACES
    if _FACES is None:
        if FER_ZIP.exists():
            # Seed 3 picks faces BlazeFace finds at this size (test_photos_hold_faces_the_detector_finds).
            _FACES = [face for _, face in fer_faces(6, seed=3)]
        else:
            _FACES = [cv2.resize(draw_face(160, smile=i / 5, seed=i), (48, 48), interpolation=cv2.INTER_AREA)
                      for i in range(6)]
    return _FACES


def canvas_with(faces: list[np.ndarray], *, seed: int) -> tuple[np.ndarray, list[tuple]]:
    """A BGR photo with the faces upscaled side by side; returns (image, boxes placed)."""
    height, width = CANVAS
    canvas = clutter(height, width, seed=seed)
    boxes = []
    slot = width // max(1, len(faces))
    for i, face in enumerate(faces):
        x = i * slot + (slot - FACE_SIDE) // 2
        y = 110 + 60 * (i % 2)
        # Tint each face a little, as skin in a colour photo would be.
        tinted = (cv2.cvtColor(upscale(face, FACE_SIDE), cv2.COLOR_GRAY2BGR) * np.array([0.85, 0.95, 1.0])).astype(np.uint8)
        canvas[y:y + FACE_SIDE, x:x + FACE_SIDE] = tinted
        boxes.append((x, y, FACE_SIDE, FACE_SIDE))
    return canvas, boxes


def png(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", image)
    return data.tobytes()


@pytest.fixture
def photos() -> dict:
    """{file name: (bytes, faces in it, boxes)} for one upload: faces, junk, a photo without a face."""
    faces = source_faces()
    one, one_boxes = canvas_with(faces[:1], seed=1)
    two, two_boxes = canvas_with(faces[1:3], seed=2)
    turned, turned_boxes = canvas_with(faces[3:4], seed=3)
    return {
        "one.jpg": (jpeg(one, 92), 1, one_boxes),
        "two.png": (png(two), 2, two_boxes),
        "turned.jpg": (exif_jpeg(turned, 6), 1, turned_boxes),
        "nothing.jpg": (jpeg(clutter(*CANVAS, seed=9)), 0, []),
        "notes.txt": (b"these are not pixels\n", 0, []),
    }


@pytest.fixture
def photo_zip() -> bytes:
    """A zip of two one-face photos, a text file, and macOS litter that must be ignored."""
    faces = source_faces()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, face in enumerate(faces[4:6]):
            image, _ = canvas_with([face], seed=20 + i)
            archive.writestr(f"party/p{i}.jpg", jpeg(image, 92))
        archive.writestr("party/readme.txt", "photos from the party")
        archive.writestr("__MACOSX/party/._p0.jpg", b"\x00\x05\x16\x07")
    return buffer.getvalue()
