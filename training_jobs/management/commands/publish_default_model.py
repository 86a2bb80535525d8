"""`manage.py publish_default_model --run ID`: ship a run's model as the app's default.

1. copy the run's ONNX file to inference/models/default.onnx, stamping `fer.version`;
2. measure ONNX Runtime latency at batch 1 and throughput batched;
3. write the model card inference/models/default.json (data, recipe, the command that
   reproduces it, the teacher it was distilled from, metrics, parameters, timings, latency;
   the `choices` already written in it are kept);
4. draw the confusion matrix, ROC curves and training curves as PNGs under docs/figures/;
5. write the prints of its training faces (default.faces.npy, fercore.face_prints), by which the
   label-error finder tells when the shipped model's scores are in-sample.
"""
import json
import statistics
import subprocess
from pathlib import Path

import onnx
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from fercore.classes import CLASSES
from fercore.face_prints import save_prints
from fercore.model_contract import VERSION_KEY, get_metadata, read_metadata, set_metadata
from inference.engine import file_sha256
from training_jobs.ml.config import TrainConfig
from training_jobs.ml.export import faces_per_second, onnx_latency_ms
from training_jobs.ml.trainer import teacher_paths
from training_jobs.models import TrainingRun
from training_jobs.services import run_splits
from training_jobs.figures import draw_confusion_matrix, draw_roc_curves, draw_training_curves

MODELS_DIR = Path(settings.BASE_DIR) / "inference" / "models"
FIGURES_DIR = Path(settings.BASE_DIR) / "docs" / "figures"


def train_command(run: TrainingRun, dataset_arg: str) -> str:
    """The `manage.py train` line that rebuilds this run: every field that differs from the default."""
    defaults = TrainConfig().to_dict()
    flags = [f"--{name.replace('_', '-')} {value}" for name, value in run.config.items()
             if name in defaults and value != defaults[name]]
    return " ".join(["python manage.py train", f"--dataset {dataset_arg}", *flags])


def git_commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=settings.BASE_DIR, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def teacher_provenance(path: str) -> dict:
    """Which model a distilled run learned from: its file's hash and, for an ONNX model, its version."""
    teacher = Path(path)
    if not teacher.exists():
        return {"path": path, "missing": True}
    info = {"path": path, "sha256": file_sha256(teacher)}
    if teacher.suffix == ".onnx":
        meta = read_metadata(teacher)
        info.update({k: meta[f"fer.{k}"] for k in ("version", "architecture") if f"fer.{k}" in meta})
    return info


# What people write into the card survives republishing: the recipe decisions with the measurements
# behind them, and the whole chain of commands when the model took more than one run.
WRITTEN_FIELDS = {"choices": [], "reproduce": []}


def previous_writing(card_path: Path) -> dict:
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError):
        card = {}
    return {name: card.get(name, empty) for name, empty in WRITTEN_FIELDS.items()}


class Command(BaseCommand):
    help = "Ship a succeeded run's model as inference/models/default.onnx with its model card."

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, required=True)
        parser.add_argument("--dataset-arg", default="../shared/datasets/fer2013/fer2013-train.zip",
                            help="how the reproducing command names the dataset")
        parser.add_argument("--out", default=str(MODELS_DIR), help="folder for default.onnx and default.json")
        parser.add_argument("--figures", default=str(FIGURES_DIR), help="folder for the confusion, ROC and training-curve images")

    def handle(self, *args, **options):
        run = TrainingRun.objects.filter(pk=options["run"]).select_related("dataset").first()
        if run is None or run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"run {options['run']} does not exist or has not succeeded")
        version = run.model_versions.order_by("-created_at").first()
        if version is None:
            raise CommandError(f"run {run.pk} has no exported model")
        out = Path(options["out"])
        out.mkdir(parents=True, exist_ok=True)
        onnx_path = out / "default.onnx"
        label = f"default-{run.finished_at:%Y%m%d}-{run.architecture}"
        self.stamp(version.path, onnx_path, label)
        card = self.card(run, version, onnx_path, label, options["dataset_arg"])
        card_path = out / "default.json"
        card.update(previous_writing(card_path))
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        figures = Path(options["figures"])
        figures.mkdir(parents=True, exist_ok=True)
        draw_confusion_matrix(run.metrics["confusion_matrix_normalized"], figures / "default-confusion.png")
        draw_roc_curves(run.metrics["roc"], run.metrics.get("macro_auc"), figures / "default-roc.png")
        draw_training_curves(run.history, figures / "default-curves.png")
        _, data, splits = run_splits(run.pk)
        save_prints(data.pixels[splits.train], out / "default.faces.npy")
        self.stdout.write(json.dumps({k: card[k] for k in ("version", "metrics_summary", "latency")}, indent=2))

    def stamp(self, source: Path, target: Path, label: str) -> None:
        model = onnx.load(str(source))
        set_metadata(model, {**get_metadata(model), VERSION_KEY: label})
        onnx.checker.check_model(model)
        onnx.save(model, str(target))

    def card(self, run, version, onnx_path: Path, label: str, dataset_arg: str) -> dict:
        m = run.metrics
        epochs = run.history or []
        seconds = [e["seconds"] for e in epochs if e.get("seconds")]
        return {
            "name": "FERWeb default model",
            "version": label,
            "architecture": run.architecture,
            "parameters": run.param_count,
            "file": {"path": "inference/models/default.onnx",
                     "sha256": file_sha256(onnx_path),
                     "bytes": onnx_path.stat().st_size},
            "contract": {"input": "input float32 [N, 1, 48, 48], grayscale, pixels / 255",
                         "output": "logits float32 [N, 7], calibrated by temperature scaling",
                         "classes": list(CLASSES)},
            "data": {
                "source": Path(dataset_arg).name,
                "description": "FER2013 training split (public folder-per-class layout), 48x48 grayscale",
                "faces": run.dataset.num_items,
                "class_counts": run.dataset.class_counts,
                "validation": (f"stratified {run.config['validation_fraction']:.0%} hold-out of the training zip, "
                               f"seed {run.config['seed']}; used only to choose the checkpoint and fit the "
                               "temperature; all metrics below are on it"),
                "splits": m.get("splits"),
            },
            "recipe": run.config,
            "teachers": [teacher_provenance(path) for path in teacher_paths(run.config.get("teacher_checkpoint", ""))],
            "command": train_command(run, dataset_arg),
            "publish_command": f"python manage.py publish_default_model --run {run.pk}",
            "metrics_summary": {
                "accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "macro_auc": m.get("macro_auc"),
                "micro_auc": m.get("micro_auc"),
                "recall": {c: m["per_class"][c]["recall"] for c in CLASSES},
            },
            "metrics": {k: v for k, v in m.items() if k not in ("roc", "occlusion", "notes")},
            "training": {
                "epochs_run": len(epochs), "best_epoch": run.best_epoch,
                "wall_time_s": run.wall_time_s,
                "seconds_per_epoch_median": statistics.median(seconds) if seconds else None,
                "device": m.get("device"), "machine": "2 CPU cores (AMD EPYC), no GPU",
            },
            "latency": {
                "batch1_median_ms_2_threads": onnx_latency_ms(onnx_path, batch=1, threads=2),
                "batched_faces_per_s_2_threads_batch_256": faces_per_second(onnx_path),
            },
            "parity_max_abs_diff": version.parity_max_abs_diff,
            "code_version": git_commit(),
        }
