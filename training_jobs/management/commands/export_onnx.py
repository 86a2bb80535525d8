"""`manage.py export_onnx --run ID --out PATH`: the run's best weights as a contract ONNX file."""
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from training_jobs.models import TrainingRun


class Command(BaseCommand):
    help = "Export a run's best checkpoint to ONNX (checked with onnx.checker and against PyTorch)."

    def add_arguments(self, parser):
        parser.add_argument("--run", type=int, required=True, help="training run id")
        parser.add_argument("--out", required=True, help="where to write the .onnx file")
        parser.add_argument("--label", default="", help="fer.version metadata (default: run-<id>-<architecture>)")
        parser.add_argument("--no-tta-flip", action="store_true",
                            help="leave flip averaging out even if the run used it (to measure what it adds)")

    def handle(self, *args, **options):
        from training_jobs.ml.architectures import build_model
        from training_jobs.ml.checkpoint import CheckpointError, load_checkpoint
        from training_jobs.ml.export import ExportError, export_onnx, onnx_latency_ms
        from training_jobs.ml.metrics import summary
        from training_jobs.services import best_checkpoint_path

        run = TrainingRun.objects.filter(pk=options["run"]).first()
        if run is None:
            raise CommandError(f"no run {options['run']}")
        checkpoint = best_checkpoint_path(run)
        if not checkpoint.exists():
            raise CommandError(f"run {run.pk} has no best checkpoint at {checkpoint} (status: {run.status})")
        model = build_model(run.architecture)
        try:
            model.load_state_dict(load_checkpoint(checkpoint)["model"])
        except CheckpointError as exc:
            raise CommandError(str(exc)) from None
        model.eval()
        metrics = {k: v for k, v in summary(run.metrics).items() if k not in ("occlusion", "notes")} if run.metrics else {}
        try:
            report = export_onnx(
                model, Path(options["out"]), architecture=run.architecture,
                version=options["label"] or f"run-{run.pk}-{run.architecture}", metrics=metrics,
                temperature=float(run.metrics.get("temperature", 1.0)),
                tta_flip=bool(run.config.get("tta_flip")) and not options["no_tta_flip"],
            )
        except ExportError as exc:
            raise CommandError(str(exc)) from None
        latency = onnx_latency_ms(report.path)
        self.stdout.write(
            f"wrote {report.path}: max |ONNX - PyTorch| {report.max_abs_diff:.2e}, same top-1 {report.top1_agree}, "
            f"median CPU latency at batch 1 {latency:.2f} ms"
        )
