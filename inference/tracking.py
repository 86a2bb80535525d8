"""What batch and video jobs need besides the engine: sources that stream, a face tracker, bounded summaries.

No Django here: every piece works frame by frame with memory that does not grow with the video's length.
"""
from dataclasses import dataclass, field

import cv2
import numpy as np

from fercore.archive import ArchiveError, GuardedZip, Limits, UnreadableMember, is_system_file
from fercore.images import ALLOWED_NAMES, ImageDecodeError, decode_image, is_image_name


class SourceError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    ix = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    iy = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = ix * iy
    return inter / float(aw * ah + bw * bh - inter) if inter else 0.0


@dataclass
class Track:
    id: int
    box: tuple
    missed: int = 0


class IoUTracker:
    """Greedy IoU matching of each frame's boxes to live tracks; unmatched boxes start new ids.

    A track survives `max_missed` processed frames without a match (a blink of the detector
    or a turned head), then its id is retired for good.
    """

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 5):
        self.iou_threshold = iou_threshold
        self.max_missed = max_missed
        self.tracks: list[Track] = []
        self.next_id = 1

    def update(self, boxes: list) -> list[int]:
        pairs = sorted(
            ((iou(track.box, box), ti, bi) for ti, track in enumerate(self.tracks) for bi, box in enumerate(boxes)),
            reverse=True,
        )
        ids: list[int | None] = [None] * len(boxes)
        used_tracks = set()
        for overlap, ti, bi in pairs:
            if overlap < self.iou_threshold:
                break
            if ti in used_tracks or ids[bi] is not None:
                continue
            used_tracks.add(ti)
            self.tracks[ti].box, self.tracks[ti].missed = tuple(boxes[bi]), 0
            ids[bi] = self.tracks[ti].id
        for ti, track in enumerate(self.tracks):
            if ti not in used_tracks:
                track.missed += 1
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for bi, box in enumerate(boxes):
            if ids[bi] is None:
                track = Track(id=self.next_id, box=tuple(box))
                self.next_id += 1
                self.tracks.append(track)
                ids[bi] = track.id
        return ids


def dominant_classes(label_counts, classes) -> list[str]:
    """The classes a face showed most often, in class order: more than one when they tie exactly."""
    top = max(label_counts, default=0)
    return [name for name, count in zip(classes, label_counts) if top > 0 and count == top]


def headline(dominant: list[str]) -> str:
    """A face's summary in words: "mostly happy", or a tie as "angry, fear and sad equally"."""
    if not dominant:
        return "no emotion read"
    if len(dominant) == 1:
        return f"mostly {dominant[0]}"
    return f"{', '.join(dominant[:-1])} and {dominant[-1]} equally"


@dataclass
class FaceStats:
    """Running totals for one face id plus a timeline of at most `max_points` averaged points."""

    classes: tuple
    max_points: int = 240
    count: int = 0
    first_t: float = 0.0
    last_t: float = 0.0
    label_counts: np.ndarray = None
    prob_sum: np.ndarray = None
    bucket_width: int = 1
    points: list = field(default_factory=list)  # [t_sum, n, prob_sum] per bucket
    _pending: list = None

    def __post_init__(self):
        self.label_counts = np.zeros(len(self.classes), np.int64)
        self.prob_sum = np.zeros(len(self.classes), np.float64)

    def add(self, t: float, probs: np.ndarray):
        if self.count == 0:
            self.first_t = t
        self.count += 1
        self.last_t = t
        self.label_counts[int(np.argmax(probs))] += 1
        self.prob_sum += probs
        if self._pending is None:
            self._pending = [0.0, 0, np.zeros(len(self.classes))]
        self._pending[0] += t
        self._pending[1] += 1
        self._pending[2] = self._pending[2] + probs
        if self._pending[1] >= self.bucket_width:
            self.points.append(self._pending)
            self._pending = None
            if len(self.points) >= self.max_points:
                # Halve the resolution: memory stays bounded however long the video runs.
                merged = []
                for a, b in zip(self.points[0::2], self.points[1::2]):
                    merged.append([a[0] + b[0], a[1] + b[1], a[2] + b[2]])
                if len(self.points) % 2:
                    merged.append(self.points[-1])
                self.points = merged
                self.bucket_width *= 2

    def timeline(self) -> list[dict]:
        points = self.points + ([self._pending] if self._pending else [])
        return [
            {"t": round(t_sum / n, 3), "probabilities": {c: round(float(v / n), 4) for c, v in zip(self.classes, p_sum)}}
            for t_sum, n, p_sum in points
        ]

    def summary(self, face_id) -> dict:
        share = self.label_counts / max(1, self.count)
        dominant = dominant_classes(self.label_counts, self.classes)
        return {
            "id": face_id,
            "detections": self.count,
            "first_s": round(self.first_t, 3),
            "last_s": round(self.last_t, 3),
            "dominant": dominant[0] if dominant else "",
            "dominant_classes": dominant,
            "headline": headline(dominant),
            "share": {c: round(float(v), 4) for c, v in zip(self.classes, share)},
            "mean_probabilities": {c: round(float(v / max(1, self.count)), 4) for c, v in zip(self.classes, self.prob_sum)},
            "timeline": self.timeline(),
        }


def zip_images(path, *, limits: Limits):
    """(count, iterator of (name, gray image or None, error)) over the image members of a zip.

    The zip passes the one archive guard first (fercore.archive: names, links, nested zips,
    member count, unpacked size, compression ratio); hidden and system files and members that are
    not images by their name are left out; each image is decoded by the one guarded decoder.
    """
    try:
        archive = GuardedZip(path, limits)
    except ArchiveError as error:
        raise SourceError(error.code, error.message) from error
    members = sorted(
        (m for m in archive.files if is_image_name(m.filename) and not is_system_file(m.filename)),
        key=lambda m: m.filename,
    )
    if not members:
        archive.close()
        raise SourceError("no_images", f"The zip holds no images ({ALLOWED_NAMES}).")

    def iterate():
        with archive:
            for member in members:
                try:
                    yield member.filename, decode_image(archive.read(member), max_pixels=limits.max_image_pixels), None
                except ImageDecodeError as exc:
                    yield member.filename, None, exc.message
                except UnreadableMember as exc:
                    yield member.filename, None, f"The file could not be unpacked from the zip ({exc})."

    return len(members), iterate()


def video_frames(path, *, every_k: int, max_seconds: int, max_pixels: int):
    """(estimated count, fps, iterator of (frame index, seconds, gray frame)) reading every k-th frame.

    Skipped frames are only grabbed, not decoded; one frame is in memory at a time.
    """
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SourceError("unreadable_video", "The video could not be opened; use mp4, webm, avi or another format OpenCV reads.")
    width, height = int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
    if width * height > max_pixels:  # from the container's header, before a frame is decoded here
        capture.release()
        raise SourceError(
            "too_many_pixels",
            f"The video's frames are {width:,} x {height:,} pixels, over the limit of {max_pixels:,} pixels.",
        )
    fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    if not (0 < fps < 1000):
        fps = 25.0
    frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    limit = int(max_seconds * fps)
    if frames <= 0:
        frames = 0
    estimate = (min(frames, limit) + every_k - 1) // every_k if frames else 0
    ok, first = capture.read()
    if not ok:
        capture.release()
        raise SourceError("unreadable_video", "The video holds no frame OpenCV can decode.")

    def iterate():
        try:
            index, frame = 0, first
            while index < limit:
                if index % every_k == 0:
                    if frame is None:
                        ok, frame = capture.retrieve()
                        if not ok:
                            break
                    yield index, index / fps, cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
                index += 1
                frame = None
                if not capture.grab():
                    break
        finally:
            capture.release()

    return estimate, fps, iterate()
