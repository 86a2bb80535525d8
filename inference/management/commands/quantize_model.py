"""INT8 static quantization of a model, kept only when it is as accurate as the float model.

    python manage.py quantize_model --model inference/models/default.onnx --run ID
    python manage.py quantize_model --model some.onnx --dataset faces.zip

1. pick the faces: with --run, the run's own validation hold-out (faces it never trained on)
   to compare and its training faces to calibrate; with --dataset, a seeded shuffle of the
   zip split into a validation part and a calibration part;
2. calibrate ONNX Runtime's static quantizer (QDQ, per-channel INT8 weights) on the calibration faces;
3. measure accuracy and latency of both models on the validation part;
4. write <model>.int8.onnx only when its accuracy is within --max-drop points of the float model.
The INT8 file records the float file's SHA-256; the engine serves it in place of the float one
while that hash still matches (FERWEB_PREFER_INT8).

--run comes from the training app, whose own quantize_model command extends this one with it; a
deployment without that app has --dataset.
"""
import json
import random
import statistics
import tempfile
import time
from pathlib import Path, PurePosixPath

import numpy as np
import onnx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from fercore.archive import ArchiveError, GuardedZip, Limits, UnreadableMember, is_system_file
from fercore.classes import CLASS_INDEX, canonical_class
from fercore.images import IMPORT_FORMATS, ImageDecodeError, decode_image, is_image_name
from fercore.model_contract import set_metadata
from fercore.preprocess import resize_face, softmax, to_model_input
from inference.engine import SOURCE_HASH_KEY, file_sha256, int8_path_for, load_model


SERVED = ("the engine serves the INT8 file in place of the float one while the float file's SHA-256 "
          "recorded in it matches (FERWEB_PREFER_INT8)")


def read_faces(path: Path, limit: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Up to `limit` random faces of a folder-per-class zip, as uint8 [N, 48, 48] and labels.

    The zip passes the archive guard and each face the one image decoder, with the settings' limits,
    as in an import; members that cannot be read are left out.
    """
    limits = Limits.from_settings(settings)
    try:
        archive = GuardedZip(path, limits)
    except ArchiveError as error:
        raise CommandError(f"cannot read {path}: {error.message}") from None
    with archive:
        members = []
        for info in archive.files:
            parts = PurePosixPath(info.filename).parts
            if len(parts) >= 2 and is_image_name(info.filename) and not is_system_file(info.filename):
                label = canonical_class(parts[-2])
                if label is not None:
                    members.append((info.filename, CLASS_INDEX[label]))
        members.sort()
        random.Random(seed).shuffle(members)
        faces, labels = [], []
        for name, label in members[:limit]:
            try:
                gray = decode_image(archive.read(name), max_pixels=limits.max_image_pixels, formats=IMPORT_FORMATS)
            except (ImageDecodeError, UnreadableMember):
                continue
            faces.append(resize_face(gray))
            labels.append(label)
    if not faces:
        raise CommandError(f"no readable faces in class folders in {path}")
    return np.stack(faces), np.array(labels)


class FaceReader:
    """onnxruntime.quantization's CalibrationDataReader protocol over uint8 faces."""

    def __init__(self, faces: np.ndarray, input_name: str, batch: int = 64):
        self.batches = iter([{input_name: to_model_input(faces[i:i + batch])} for i in range(0, len(faces), batch)])

    def get_next(self):
        return next(self.batches, None)

    def rewind(self):
        raise NotImplementedError


def accuracy(model, faces, labels) -> float:
    probs = np.concatenate([softmax(model.logits(to_model_input(faces[i:i + 256]))) for i in range(0, len(faces), 256)])
    return float((probs.argmax(1) == labels).mean())


def latency(model) -> tuple[float, float]:
    one = np.random.default_rng(0).random((1, 1, 48, 48), dtype=np.float32)
    many = np.random.default_rng(1).random((256, 1, 48, 48), dtype=np.float32)
    for _ in range(20):
        model.logits(one)
    times = []
    for _ in range(300):
        t0 = time.perf_counter()
        model.logits(one)
        times.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    for _ in range(5):
        model.logits(many)
    return statistics.median(times), 5 * 256 / (time.perf_counter() - t0)


class Command(BaseCommand):
    help = "Quantize a model to INT8 (static, calibrated on training faces); keep it if accuracy holds."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True)
        self.add_face_sources(parser.add_mutually_exclusive_group(required=True))
        parser.add_argument("--calibration", type=int, default=1000, help="Faces used to calibrate.")
        parser.add_argument("--validation", type=int, default=3000, help="Faces used to compare accuracy (--dataset).")
        parser.add_argument("--max-drop", type=float, default=0.5, help="Accuracy points the INT8 model may lose.")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--card", help="Model card (JSON) whose int8 section gets this report.")
        parser.add_argument("--json", action="store_true")

    def add_face_sources(self, group) -> None:
        """Where the faces come from: one of these options is required."""
        group.add_argument("--dataset", help="Folder-per-class zip (e.g. the FER2013 training zip).")

    def pick_faces(self, opts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(validation faces, their labels, calibration faces)."""
        faces, labels = read_faces(Path(opts["dataset"]), opts["calibration"] + opts["validation"], opts["seed"])
        return faces[:opts["validation"]], labels[:opts["validation"]], faces[opts["validation"]:]

    def faces_from(self, opts) -> str:
        return "seeded sample of the zip"

    def handle(self, *args, **opts):
        from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        source = Path(opts["model"])
        if not source.exists():
            raise CommandError(f"No model at {source}.")
        val_faces, val_labels, cal_faces = self.pick_faces(opts)
        float_model = load_model(source, threads=2)
        target = int8_path_for(source)
        with tempfile.TemporaryDirectory() as tmp:
            prepared = Path(tmp) / "prepared.onnx"
            quant_pre_process(str(source), str(prepared))
            quantized = Path(tmp) / "int8.onnx"
            quantize_static(
                str(prepared), str(quantized), FaceReader(cal_faces, float_model.input_name),
                quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
            )
            int8_model = load_model(quantized, threads=2)
            acc_float, acc_int8 = accuracy(float_model, val_faces, val_labels), accuracy(int8_model, val_faces, val_labels)
            lat_float, lat_int8 = latency(float_model), latency(int8_model)
            drop = 100 * (acc_float - acc_int8)
            offered = drop <= opts["max_drop"]
            if offered:
                model = onnx.load(str(quantized))
                set_metadata(model, {**float_model.metadata, "fer.quantized": "int8", SOURCE_HASH_KEY: file_sha256(source),
                                     "fer.int8": json.dumps({"float_accuracy": acc_float, "int8_accuracy": acc_int8,
                                                             "calibration_faces": len(cal_faces),
                                                             "validation_faces": len(val_faces)})})
                onnx.save(model, str(target))
            elif target.exists():
                target.unlink()
        report = {
            "model": str(source), "validation_faces": len(val_faces), "calibration_faces": len(cal_faces),
            "faces_from": self.faces_from(opts),
            "float": {"accuracy": acc_float, "median_ms_batch1": lat_float[0], "faces_per_s_batch256": lat_float[1]},
            "int8": {"accuracy": acc_int8, "median_ms_batch1": lat_int8[0], "faces_per_s_batch256": lat_int8[1]},
            "accuracy_drop_points": drop, "offered": offered, "int8_path": str(target) if offered else None,
        }
        if opts["card"]:
            self.write_card(Path(opts["card"]), report)
        if opts["json"]:
            self.stdout.write(json.dumps(report))
            return
        self.stdout.write(f"validation: {len(val_faces)} faces, calibration: {len(cal_faces)} faces")
        self.stdout.write("| model | accuracy | median ms, batch 1 | faces/s, batch 256 |\n| --- | --- | --- | --- |")
        for name in ("float", "int8"):
            r = report[name]
            self.stdout.write(f"| {name} | {r['accuracy']:.2%} | {r['median_ms_batch1']:.3f} | {r['faces_per_s_batch256']:,.0f} |")
        verdict = f"offered: wrote {target}" if offered else f"not offered (limit {opts['max_drop']} points)"
        self.stdout.write(f"accuracy drop {drop:.2f} points: {verdict}")

    def write_card(self, path: Path, report: dict) -> None:
        try:
            card = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise CommandError(f"Cannot read the model card {path}: {exc}") from None
        card["int8"] = {
            **report,
            "method": "ONNX Runtime static quantization (QDQ, per-channel INT8 weights, MinMax calibration)",
            "served": SERVED,
        }
        path.write_text(json.dumps(card, indent=2) + "\n")
