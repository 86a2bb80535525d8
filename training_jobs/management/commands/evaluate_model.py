"""`manage.py evaluate_model --model PATH [--model PATH ...] (--dataset PATH | --run ID) [--json]`: an
ONNX model on faces; several --model flags evaluate their ensemble (logits averaged per face, as
when they teach together).

--dataset reads a dataset file; --run takes the faces a training run was evaluated on (its test
split, else its validation hold-out), split exactly as the run split them. The model itself runs in
ONNX Runtime and NumPy only (no PyTorch), so it checks exactly what a stranger would run.
"""
import json
import time

import numpy as np
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from fercore.classes import CLASSES


def evaluate_onnx(model_paths, pixels: np.ndarray, labels: np.ndarray, *, batch_size: int = 256, threads: int = 0):
    """Probabilities of the model (or the ensemble of several) for uint8 faces [N, 48, 48], then the full metric set."""
    from fercore.preprocess import softmax
    from training_jobs.ml.metrics import evaluate

    paths = model_paths if isinstance(model_paths, (list, tuple)) else [model_paths]
    logits = np.mean([onnx_logits(path, pixels, batch_size=batch_size, threads=threads) for path in paths], axis=0)
    probs = softmax(logits) if len(logits) else np.zeros((0, len(CLASSES)))
    return evaluate(labels, probs)


def onnx_logits(model_path, pixels: np.ndarray, *, batch_size: int, threads: int) -> np.ndarray:
    from inference.engine import faces_logits, load_model

    return faces_logits(load_model(model_path, threads), pixels, batch_size).astype(np.float64)


def format_report(metrics: dict) -> str:
    lines = [
        f"faces: {metrics['num_samples']}",
        f"accuracy: {metrics['accuracy']:.4f}",
        f"macro F1: {metrics['macro_f1']:.4f}",
        f"macro AUC: {_num(metrics['macro_auc'])}   micro AUC: {_num(metrics['micro_auc'])}",
        "",
        f"{'class':<10}{'precision':>10}{'recall':>10}{'F1':>10}{'specif.':>10}{'support':>10}{'AUC':>10}",
    ]
    for name in CLASSES:
        m = metrics["per_class"][name]
        lines.append(f"{name:<10}{m['precision']:>10.4f}{m['recall']:>10.4f}{m['f1']:>10.4f}"
                     f"{m['specificity']:>10.4f}{m['support']:>10d}{_num(m['auc']):>10}")
    lines += ["", "confusion matrix (rows: true, columns: predicted)",
              " " * 10 + "".join(f"{c[:8]:>9}" for c in CLASSES)]
    for name, row in zip(CLASSES, metrics["confusion_matrix"]):
        lines.append(f"{name:<10}" + "".join(f"{v:>9d}" for v in row))
    return "\n".join(lines)


def _num(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"


class Command(BaseCommand):
    help = "Evaluate an ONNX model (the FERWeb contract) on a dataset: folder tree, zip or FER2013 CSV."

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, action="append",
                            help="ONNX file: input [N,1,48,48] in [0,1], output logits [N,7]; repeat it to "
                                 "evaluate the ensemble (logits averaged)")
        faces = parser.add_mutually_exclusive_group(required=True)
        faces.add_argument("--dataset", help="folder tree, zip or FER2013 CSV")
        faces.add_argument("--run", type=int, help="the faces this training run was evaluated on")
        parser.add_argument("--split", default="", help="only faces of this split (e.g. test, PrivateTest)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0 = its default)")

    def handle(self, *args, **options):
        from fercore.readers import DatasetError, read_dataset
        from fercore.faces import FaceDetector

        started = time.perf_counter()
        # call_command(model=...) hands over one path; the command line a list.
        models = [options["model"]] if isinstance(options["model"], str) else list(options["model"])
        if options["run"] is not None:
            pixels, labels, splits, skipped, source = self.run_faces(options["run"])
        else:
            try:
                data = read_dataset(options["dataset"], detector=FaceDetector(min_face_size=settings.FERWEB_MIN_FACE_SIZE))
            except (DatasetError, FileNotFoundError) as exc:
                raise CommandError(f"cannot read {options['dataset']}: {exc}") from None
            pixels, labels, splits = data.pixels, data.labels, np.asarray(data.splits, dtype=str)
            skipped, source = len(data.skipped) + len(data.no_face), str(options["dataset"])
        if options["split"]:
            keep = np.char.lower(splits) == options["split"].lower()
            if not keep.any():
                raise CommandError(f"no faces in split {options['split']!r}; splits: {', '.join(sorted(set(splits)))}")
            pixels, labels = pixels[keep], labels[keep]
        if not len(labels):
            raise CommandError(f"no faces could be read from {source}")
        try:
            metrics = evaluate_onnx(models, pixels, labels, threads=options["threads"])
        except Exception as exc:  # onnxruntime raises its own types for unreadable models
            raise CommandError(f"cannot run {', '.join(models)}: {exc}") from None
        metrics["model"] = ", ".join(models)
        metrics["dataset"] = source
        metrics["skipped_files"] = skipped
        metrics["seconds"] = round(time.perf_counter() - started, 2)
        if options["json"]:
            self.stdout.write(json.dumps(metrics))
        else:
            self.stdout.write(format_report(metrics))

    def run_faces(self, run_id: int):
        from training_jobs.services import RunFailure, run_splits

        try:
            run, data, splits = run_splits(run_id)
        except RunFailure as exc:
            raise CommandError(str(exc)) from None
        source = f"run {run.pk}: {splits.test_source} of dataset {run.dataset_id} ({run.dataset.name})"
        return data.pixels[splits.test], data.labels[splits.test], data.splits[splits.test], 0, source
