"""Scenes for benchmarks and tests: faces on cluttered 640x480 canvases with known boxes.

Faces come from the FER2013 training zip (benchmarks) or are drawn with OpenCV (tests,
which must not depend on data outside the repository). The drawn face has what a frontal
cascade keys on: dark eye sockets and brows, a bright nose bridge, a darker mouth.
"""
import os
import zipfile
from pathlib import Path

import cv2
import numpy as np

# The FER2013 training split next to the checkout (../shared/datasets/...), or where FERWEB_FER2013_ZIP says.
FER_ZIP = Path(os.environ.get(
    "FERWEB_FER2013_ZIP", Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fer2013" / "fer2013-train.zip"
))


def draw_face(size: int = 160, *, smile: float = 0.0, seed: int = 0) -> np.ndarray:
    """A gray, roughly frontal cartoon face filling a size x size patch."""
    rng = np.random.default_rng(seed)
    s = size
    skin = int(rng.integers(170, 210))
    img = np.full((s, s), int(rng.integers(25, 60)), np.uint8)
    cv2.ellipse(img, (s // 2, s // 2), (int(s * 0.36), int(s * 0.46)), 0, 0, 360, skin, -1)
    img = cv2.GaussianBlur(img, (0, 0), s * 0.03)
    for cx in (0.33, 0.67):
        cv2.line(img, (int(s * (cx - 0.1)), int(s * 0.33)), (int(s * (cx + 0.1)), int(s * 0.33)), 70, max(2, s // 25))
        cv2.ellipse(img, (int(s * cx), int(s * 0.42)), (int(s * 0.08), int(s * 0.04)), 0, 0, 360, 60, -1)
        cv2.circle(img, (int(s * cx), int(s * 0.42)), max(2, int(s * 0.025)), 20, -1)
    cv2.line(img, (s // 2, int(s * 0.45)), (s // 2, int(s * 0.6)), min(255, skin + 25), max(2, s // 20))
    cv2.ellipse(img, (s // 2, int(s * 0.63)), (int(s * 0.07), int(s * 0.025)), 0, 0, 360, 110, -1)
    mouth_h = max(1, int(s * (0.04 + 0.05 * smile)))
    cv2.ellipse(img, (s // 2, int(s * 0.75)), (int(s * 0.14), mouth_h), 0, 0, 360, 80, -1)
    return cv2.GaussianBlur(img, (0, 0), max(0.5, s * 0.01))


def clutter(height: int = 480, width: int = 640, *, seed: int = 0) -> np.ndarray:
    """A BGR background of soft noise, gradients, boxes, lines and text: no faces."""
    rng = np.random.default_rng(seed)
    base = rng.random((height // 8, width // 8, 3)) * 120 + 60
    img = cv2.resize(base.astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(12):
        color = tuple(int(c) for c in rng.integers(0, 255, 3))
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        kind = rng.integers(0, 3)
        if kind == 0:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(10, 120)), y + int(rng.integers(10, 120))), color, -1)
        elif kind == 1:
            cv2.line(img, (x, y), (int(rng.integers(0, width)), int(rng.integers(0, height))), color, int(rng.integers(1, 6)))
        else:
            cv2.putText(img, "FERWeb", (x, y), cv2.FONT_HERSHEY_SIMPLEX, float(rng.uniform(0.5, 2)), color, 2)
    return img


def place(canvas: np.ndarray, face: np.ndarray, x: int, y: int) -> tuple[int, int, int, int]:
    """Paste a gray face into a BGR canvas at (x, y); returns its box."""
    h, w = face.shape[:2]
    canvas[y:y + h, x:x + w] = face[:, :, None] if canvas.ndim == 3 else face
    return (x, y, w, h)


def scene(faces: list[np.ndarray], *, seed: int = 0, height: int = 480, width: int = 640):
    """Faces spread left to right over a cluttered canvas; returns (BGR image, boxes left to right)."""
    rng = np.random.default_rng(seed)
    canvas = clutter(height, width, seed=seed)
    boxes = []
    slot = width // max(1, len(faces))
    for i, face in enumerate(faces):
        size = face.shape[0]
        x = i * slot + int(rng.integers(0, max(1, slot - size)))
        y = int(rng.integers(0, max(1, height - size)))
        boxes.append(place(canvas, face, x, y))
    return canvas, boxes


def fer_faces(count: int, *, seed: int = 0, path: Path = FER_ZIP) -> list[tuple[str, np.ndarray]]:
    """`count` random (class, 48x48 gray face) pairs from the FER2013 training zip."""
    rng = np.random.default_rng(seed)
    with zipfile.ZipFile(path) as archive:
        names = [n for n in archive.namelist() if n.lower().endswith(".jpg")]
        picked = rng.choice(len(names), size=min(count, len(names)), replace=False)
        out = []
        for index in picked:
            name = names[int(index)]
            data = np.frombuffer(archive.read(name), np.uint8)
            out.append((name.split("/")[-2], cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)))
    return out


def upscale(face: np.ndarray, size: int) -> np.ndarray:
    return cv2.resize(face, (size, size), interpolation=cv2.INTER_CUBIC)


def jpeg(image: np.ndarray, quality: int = 85) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes()


def exif_jpeg(image: np.ndarray, orientation: int) -> bytes:
    """A JPEG whose pixels are stored turned, with the EXIF orientation (3, 6 or 8) that turns them back."""
    from io import BytesIO

    from PIL import Image

    turn = {6: cv2.ROTATE_90_COUNTERCLOCKWISE, 8: cv2.ROTATE_90_CLOCKWISE, 3: cv2.ROTATE_180}[orientation]
    stored = Image.fromarray(cv2.cvtColor(cv2.rotate(image, turn), cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = BytesIO()
    stored.save(out, format="JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()


def encode(image: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    return buf.tobytes()


def png_bomb(width: int, height: int) -> bytes:
    """A valid black 1-bit PNG: about width x height / 8000 bytes on disk, width x height bytes once decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows_per_block = 1000
    block = bytes(1 + (width + 7) // 8) * rows_per_block  # filter byte + packed bits, per row
    packer = zlib.compressobj(9)
    data = [packer.compress(block) for _ in range(height // rows_per_block)]
    data += [packer.compress(block[: (height % rows_per_block) * len(block) // rows_per_block]), packer.flush()]
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # bit depth 1, grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(data)) + chunk(b"IEND", b"")


def contract_model(path: Path, *, seed: int = 0, version: str = "synthetic", hidden: int = 64,
                   metadata: dict | None = None) -> Path:
    """A small random ONNX model that follows the model contract (DESIGN.md), built without torch.

    input "input" float32 [N, 1, 48, 48] -> flatten -> dense -> ReLU -> dense -> "logits" [N, 7],
    with the fer.* metadata (plus `metadata`). Its labels mean nothing; its shape and metadata are
    the real thing.
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from fercore.classes import CLASSES
    from fercore.model_contract import contract_metadata, set_metadata

    rng = np.random.default_rng(seed)
    w1 = rng.normal(0, 0.05, (48 * 48, hidden)).astype(np.float32)
    b1 = np.zeros(hidden, np.float32)
    w2 = rng.normal(0, 0.3, (hidden, len(CLASSES))).astype(np.float32)
    b2 = rng.normal(0, 0.1, len(CLASSES)).astype(np.float32)
    nodes = [
        helper.make_node("Flatten", ["input"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["hr"]),
        helper.make_node("Gemm", ["hr", "w2", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "fer_contract",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 1, 48, 48])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", len(CLASSES)])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    set_metadata(model, {**contract_metadata(architecture="synthetic-mlp", version=version), **(metadata or {})})
    onnx.checker.check_model(model)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    onnx.save(model, tmp)
    tmp.replace(path)  # atomic: a process never loads half a file
    return path
