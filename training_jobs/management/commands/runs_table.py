"""`manage.py runs_table --run ID [ID ...] [--json]`: finished runs side by side, as Markdown.

One row per run: architecture, epochs, accuracy, macro F1, macro AUC, recall of every class,
parameters, training time and seconds per epoch from the run's record; ONNX Runtime latency at
batch 1 and throughput at batch 256 (2 threads) measured now on the run's exported model, so
every row is timed on the same machine in the same state.
"""
import json
import statistics

from django.core.management.base import BaseCommand, CommandError

from fercore.classes import CLASSES
from training_jobs.ml.export import faces_per_second, onnx_latency_ms
from training_jobs.models import TrainingRun


def run_row(run: TrainingRun) -> dict:
    m = run.metrics or {}
    seconds = [e["seconds"] for e in run.history or [] if e.get("seconds")]
    version = run.model_versions.order_by("-created_at").first()
    row = {
        "run": run.pk, "architecture": run.architecture, "epochs": len(run.history or []),
        "accuracy": m.get("accuracy"), "macro_f1": m.get("macro_f1"), "macro_auc": m.get("macro_auc"),
        "recall": {c: m.get("per_class", {}).get(c, {}).get("recall") for c in CLASSES},
        "parameters": run.param_count, "wall_time_s": run.wall_time_s,
        "seconds_per_epoch": statistics.median(seconds) if seconds else None,
        "tta_flip": bool((run.config or {}).get("tta_flip")),
        "onnx_ms_batch1": None, "onnx_faces_per_s_batch256": None,
    }
    if version is not None and version.path.exists():
        row["onnx_ms_batch1"] = onnx_latency_ms(version.path, batch=1, threads=2)
        row["onnx_faces_per_s_batch256"] = faces_per_second(version.path)
    return row


def fmt(value, pattern: str) -> str:
    return "—" if value is None else format(value, pattern)


def markdown(rows: list[dict]) -> str:
    head = ["run", "architecture", "epochs", "accuracy", "macro F1", "macro AUC", *CLASSES, "parameters",
            "training", "s/epoch", "ONNX ms, batch 1", "faces/s, batch 256"]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        cells = [str(r["run"]), r["architecture"] + (" (+flip)" if r["tta_flip"] else ""), str(r["epochs"]),
                 fmt(r["accuracy"], ".2%"), fmt(r["macro_f1"], ".3f"), fmt(r["macro_auc"], ".3f"),
                 *(fmt(r["recall"][c], ".2f") for c in CLASSES), fmt(r["parameters"], ","),
                 "—" if r["wall_time_s"] is None else f"{r['wall_time_s'] / 60:.1f} min",
                 fmt(r["seconds_per_epoch"], ".0f"), fmt(r["onnx_ms_batch1"], ".3f"),
                 fmt(r["onnx_faces_per_s_batch256"], ",.0f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


class Command(BaseCommand):
    help = "Print finished training runs side by side (Markdown or JSON), timing their ONNX models now."

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, nargs="+", required=True, help="run ids, in the order of the rows")
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, **options):
        runs = {run.pk: run for run in TrainingRun.objects.filter(pk__in=options["run"])}
        missing = [pk for pk in options["run"] if pk not in runs]
        if missing:
            raise CommandError(f"no run {', '.join(map(str, missing))}")
        unfinished = [pk for pk, run in runs.items() if run.status != TrainingRun.Status.SUCCEEDED]
        if unfinished:
            raise CommandError(f"run {', '.join(map(str, unfinished))} has not succeeded")
        rows = [run_row(runs[pk]) for pk in options["run"]]
        self.stdout.write(json.dumps(rows, indent=2) if options["json"] else markdown(rows))
