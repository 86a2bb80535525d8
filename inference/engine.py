"""ONNX Runtime on the CPU: sessions per model file, batched classification, the photo pipeline.

Sessions are cached by (path, mtime, size): replacing or promoting a model changes the key,
so every process picks the new one up on its next prediction without a restart. No torch here.
"""
import hashlib
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort

from fercore.model_contract import parse_metadata
from fercore.preprocess import crop_face, softmax, to_gray, to_model_input

from fercore.faces import Face, FaceDetector


class ModelUnavailable(Exception):
    """The active model file is missing or unreadable."""

    code = "no_model"


@dataclass
class LoadedModel:
    path: Path
    key: tuple
    session: ort.InferenceSession
    classes: tuple[str, ...]
    version: str
    input_name: str
    output_name: str
    metadata: dict = field(default_factory=dict)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]


def session_options(threads: int) -> ort.SessionOptions:
    """One intra-op pool of `threads`, no inter-op parallelism (a small CNN is a chain of ops)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn the other core that detection and the web process need.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def load_model(path: Path, threads: int) -> LoadedModel:
    path = Path(path)
    try:
        stat = path.stat()
        session = ort.InferenceSession(str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"])
    except FileNotFoundError:
        raise ModelUnavailable(f"No model available: {path} does not exist. Train and activate a model, or restore the default model file.")
    except Exception as exc:  # onnxruntime raises its own exception types for broken files
        raise ModelUnavailable(f"No model available: {path} could not be loaded ({exc}).")
    contract = parse_metadata(session.get_modelmeta().custom_metadata_map)
    return LoadedModel(
        path=path,
        key=(str(path), stat.st_mtime_ns, stat.st_size),
        session=session,
        classes=contract.classes,
        version=contract.version or path.stem,
        input_name=session.get_inputs()[0].name,
        output_name=session.get_outputs()[0].name,
        metadata=contract.props,
    )


def int8_path_for(path) -> Path:
    """Where `manage.py quantize_model` puts a model's INT8 variant (only when it kept the accuracy)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.int8.onnx")


def file_sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# The INT8 file records the hash of the float file it was quantized from.
SOURCE_HASH_KEY = "fer.float_sha256"


class ModelCache:
    """Sessions keyed by (path, mtime, size); one stat() per lookup keeps reloads automatic.

    With prefer_int8, a model's INT8 variant serves in its place when it was quantized from the
    float file as it is now (the hash it records matches), so a retrained float model wins until
    it is quantized again. Files' times say nothing here: a fresh checkout writes them in any order.
    An INT8 file from before hashes were recorded serves while it is not older than the float one.
    """

    def __init__(self, threads: int, max_models: int = 4, prefer_int8: bool = False):
        self.threads = threads
        self.max_models = max_models
        self.prefer_int8 = prefer_int8
        self._models: dict[tuple, LoadedModel] = {}
        self._hashes: dict[tuple, str] = {}
        self._unreadable: set[tuple] = set()
        self._lock = threading.Lock()

    def get(self, path) -> LoadedModel:
        path = Path(path)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ModelUnavailable(f"No model available: {path} does not exist. Train and activate a model, or restore the default model file.")
        if self.prefer_int8:
            variant = self._int8_variant(path, stat)
            if variant is not None:
                return variant
        return self._session(path, stat)

    def _int8_variant(self, path: Path, stat) -> LoadedModel | None:
        int8_path = int8_path_for(path)
        try:
            int8_stat = int8_path.stat()
        except FileNotFoundError:
            return None
        key = (str(int8_path), int8_stat.st_mtime_ns, int8_stat.st_size)
        if key in self._unreadable:
            return None
        try:
            model = self._session(int8_path, int8_stat)
        except ModelUnavailable:  # a broken variant must not take the float model down with it
            self._unreadable.add(key)
            return None
        source = model.metadata.get(SOURCE_HASH_KEY)
        if source is None:
            fresh = int8_stat.st_mtime_ns >= stat.st_mtime_ns
        else:
            fresh = source == self._sha256(path, stat)
        return model if fresh else None

    def _sha256(self, path: Path, stat) -> str:
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        if key not in self._hashes:
            self._hashes = {k: v for k, v in self._hashes.items() if k[0] != key[0]}
            self._hashes[key] = file_sha256(path)
        return self._hashes[key]

    def _session(self, path: Path, stat) -> LoadedModel:
        key = (str(path), stat.st_mtime_ns, stat.st_size)
        model = self._models.get(key)
        if model is not None:
            return model
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = load_model(path, self.threads)
                # A new file at the same path replaces the old session.
                for old in [k for k in self._models if k[0] == key[0]]:
                    del self._models[old]
                while len(self._models) >= self.max_models:
                    del self._models[next(iter(self._models))]
                self._models[model.key] = model
            return model


def faces_logits(model: LoadedModel, faces: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """uint8 faces [N, 48, 48] -> logits [N, classes], batch by batch (evaluation and teachers)."""
    out = [model.logits(to_model_input(faces[start:start + batch_size])) for start in range(0, len(faces), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, len(model.classes)), dtype=np.float32)


def classify(model: LoadedModel, faces: np.ndarray) -> np.ndarray:
    """uint8 faces [N, 48, 48] -> probabilities [N, classes] (the one preprocessing, then softmax)."""
    if len(faces) == 0:
        return np.zeros((0, len(model.classes)), dtype=np.float32)
    return softmax(model.logits(to_model_input(faces)))


class Batcher:
    """Classifies faces from many threads in shared ONNX Runtime calls, without a thread of its own.

    Callers queue their faces; whoever finds no batch running becomes the leader and runs
    everything waiting (for the same model) as one call, in its own thread. Alone, a caller
    runs at once with no thread hand-off, which matters when the cores are contended; under
    load, concurrent API requests and webcam clients share calls.
    """

    def __init__(self, max_batch: int = 64):
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._leader = threading.Lock()

    def classify(self, model: LoadedModel, faces: np.ndarray) -> np.ndarray:
        if len(faces) == 0:
            return classify(model, faces)
        future: Future = Future()
        self._queue.put((model, faces, future))
        while not future.done():
            if self._leader.acquire(blocking=False):
                try:
                    self._drain()
                finally:
                    self._leader.release()
            else:
                try:  # a batch is running, perhaps with our faces in it
                    return future.result(timeout=0.002)
                except TimeoutError:
                    pass
        return future.result()

    def _drain(self):
        while True:
            waiting, count = [], 0
            while count < self.max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                waiting.append(item)
                count += len(item[1])
            if not waiting:
                return
            by_model: dict[tuple, list] = {}
            for item in waiting:
                by_model.setdefault(item[0].key, []).append(item)
            for items in by_model.values():
                try:
                    probs = classify(items[0][0], np.concatenate([faces for _, faces, _ in items]))
                except Exception as exc:
                    for _, _, future in items:
                        future.set_exception(exc)
                    continue
                start = 0
                for _, faces, future in items:
                    future.set_result(probs[start:start + len(faces)])
                    start += len(faces)


@dataclass
class Prediction:
    faces: list[dict]
    timing_ms: dict
    message: str


def face_results(model: LoadedModel, faces: list[Face], probs: np.ndarray) -> list[dict]:
    results = []
    for face, p in zip(faces, probs):
        best = int(np.argmax(p))
        results.append({
            "box": list(face.box),
            "label": model.classes[best],
            "confidence": round(float(p[best]), 4),
            "probabilities": {name: round(float(v), 4) for name, v in zip(model.classes, p)},
            "too_small": face.too_small,
        })
    return results


def no_face_message(faces: list[Face], min_face_size: int) -> str:
    if not faces:
        return "No face found in the image."
    small = sum(face.too_small for face in faces)
    if small:
        return f"{small} of {len(faces)} faces are smaller than {min_face_size} px; their labels are unreliable."
    return f"{len(faces)} face{'s' if len(faces) != 1 else ''} found."


class Engine:
    """Model cache + detector + batcher: what the web process and the workers share."""

    def __init__(self, *, threads: int, min_face_size: int, batcher: bool = True, detector: str = "auto",
                 prefer_int8: bool = False):
        self.models = ModelCache(threads, prefer_int8=prefer_int8)
        self.detector = FaceDetector(min_face_size=min_face_size, backend=detector)
        self.batcher = Batcher() if batcher else None
        self.min_face_size = min_face_size

    def classify(self, model: LoadedModel, faces: np.ndarray) -> np.ndarray:
        if self.batcher is not None:
            return self.batcher.classify(model, faces)
        return classify(model, faces)

    def predict_image(self, image: np.ndarray, model_path, *, decode_ms: float = 0.0, thorough: bool = False) -> Prediction:
        """Faces left to right, each {box, label, probabilities}, plus timings in ms.

        1. detect on a downscaled gray copy; 2. crop each face from the full-size gray
        image; 3. classify all faces of the image in one call.
        """
        model = self.models.get(model_path)
        t0 = time.perf_counter()
        gray = to_gray(image)
        faces = self.detector.detect(gray, thorough=thorough)
        t1 = time.perf_counter()
        crops = np.stack([crop_face(gray, face.box) for face in faces]) if faces else np.zeros((0, 48, 48), np.uint8)
        probs = self.classify(model, crops)
        t2 = time.perf_counter()
        timing = {"decode": round(decode_ms, 2), "detect": round((t1 - t0) * 1000, 2), "classify": round((t2 - t1) * 1000, 2)}
        timing["total"] = round(sum(timing.values()), 2)
        return Prediction(
            faces=face_results(model, faces, probs), timing_ms=timing, message=no_face_message(faces, self.min_face_size)
        )


_engine: Engine | None = None
_engine_lock = threading.Lock()


def get_engine() -> Engine:
    """The process-wide engine, built from settings on first use."""
    global _engine
    if _engine is None:
        from django.conf import settings

        with _engine_lock:
            if _engine is None:
                _engine = Engine(
                    threads=settings.FERWEB_INFERENCE_THREADS,
                    min_face_size=settings.FERWEB_MIN_FACE_SIZE,
                    detector=settings.FERWEB_FACE_DETECTOR,
                    prefer_int8=settings.FERWEB_PREFER_INT8,
                )
    return _engine


def reset_engine():
    """Forget the process-wide engine (settings changed, e.g. in tests)."""
    global _engine
    _engine = None

