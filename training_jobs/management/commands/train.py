"""`manage.py train --dataset ID|PATH [--user NAME] [--<any TrainConfig field> VALUE ...]`.

The same recipe as the form and the API (every TrainConfig field is a flag), recorded as a
run like any other: it shows up on /runs/, streams to its page and yields a model version.
By default it trains in this process with a progress bar; --background leaves it to the workers.
"""
import socket
import sys
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from ferweb.datasets.models import Dataset
from ferweb.quotas import QuotaExceeded
from training_jobs import services
from training_jobs.models import TrainingRun


class Command(BaseCommand):
    help = "Train a model on a dataset (id of an imported one, or a file to import first) and record the run."

    def add_arguments(self, parser):
        from training_jobs.ml.trainer import add_config_arguments

        parser.add_argument("--dataset", required=True, help="dataset id, or a zip / CSV / folder to import first")
        parser.add_argument("--user", default="", help="owner of the run (default: the only superuser)")
        parser.add_argument("--name", default="", help="name of the run")
        parser.add_argument("--init-from-run", type=int, default=None, help="fine-tune from this run's best weights")
        parser.add_argument("--teacher-run", type=int, default=None, help="distil from this run's best weights")
        parser.add_argument("--background", action="store_true", help="queue it for the training worker and return")
        add_config_arguments(parser)

    def handle(self, *args, **options):
        from training_jobs.ml.config import TrainConfig

        user = self._user(options["user"])
        dataset = self._dataset(options["dataset"], user)
        config = {name: options[name] for name in TrainConfig.field_names() if options.get(name) is not None}
        checkpoint_path = config.pop("init_checkpoint", "")
        earlier = {}
        for field in ("init_from_run", "teacher_run"):
            if options[field]:
                earlier[field] = TrainingRun.objects.filter(pk=options[field]).first()
                if earlier[field] is None:
                    raise CommandError(f"no run {options[field]}")
        try:
            if checkpoint_path:
                with open(checkpoint_path, "rb") as handle:
                    run = self._create(user, dataset, config, options, earlier, File(handle, name=Path(checkpoint_path).name))
            else:
                run = self._create(user, dataset, config, options, earlier, None)
        except FileNotFoundError:
            raise CommandError(f"no checkpoint file {checkpoint_path}") from None
        except services.RunError as exc:
            raise CommandError("invalid run:\n" + "\n".join(f"  {k}: {v}" for k, v in exc.errors.items())) from None
        except QuotaExceeded as exc:
            raise CommandError(str(exc.detail)) from None
        self.stdout.write(f"run {run.pk}: {run.architecture} on dataset {dataset.pk} ({dataset.name}) for {user.username}")
        if options["background"]:
            self.stdout.write(f"queued; follow it at /runs/{run.pk}/")
            return
        self._train_here(run)

    def _create(self, user, dataset, config, options, earlier, checkpoint):
        # Whoever runs manage.py has the server's files anyway: a --teacher-checkpoint path is fine here.
        return services.run_create(
            user=user, dataset=dataset, config=config, name=options["name"],
            init_from_run=earlier.get("init_from_run"), teacher_run=earlier.get("teacher_run"),
            init_checkpoint=checkpoint, queue=options["background"], trusted_paths=True,
        )

    def _train_here(self, run: TrainingRun) -> None:
        from training_jobs.ml.trainer import ConsoleProgress

        worker = f"cli-{socket.gethostname()}-{run.pk}"
        try:
            finished = services.run_execute(
                run_id=run.pk, worker=worker, on_event=ConsoleProgress(getattr(self.stderr, "_out", sys.stderr))
            )
        except KeyboardInterrupt:
            services.run_cancel(run=run)
            raise CommandError(f"interrupted; run {run.pk} cancelled")
        if finished is None:
            self.stdout.write(f"a worker took run {run.pk} first; follow it at /runs/{run.pk}/")
            return
        run = finished
        if run.status != TrainingRun.Status.SUCCEEDED:
            raise CommandError(f"run {run.pk} {run.status}: {run.error} {run.human_readable_error}")
        m = run.metrics
        version = run.model_versions.order_by("-created_at").first()
        self.stdout.write(
            f"run {run.pk} succeeded in {run.wall_time_s:.0f}s: test accuracy {m['accuracy']:.4f}, "
            f"macro F1 {m['macro_f1']:.4f}, macro AUC {m['macro_auc'] or float('nan'):.4f}, "
            f"{run.param_count:,} parameters"
        )
        if version:
            self.stdout.write(f"model version {version.pk} ({version.version}): {version.path}, "
                              f"{version.latency_ms:.2f} ms per face on the CPU")

    def _user(self, name: str):
        users = get_user_model().objects
        if name:
            user = users.filter(username=name).first()
            if user is None:
                raise CommandError(f"no user {name!r}")
            return user
        supers = list(users.filter(is_superuser=True)[:2])
        if len(supers) != 1:
            raise CommandError("say whose run it is with --user NAME")
        return supers[0]

    def _dataset(self, value: str, user) -> Dataset:
        if value.isdigit():
            dataset = Dataset.objects.filter(pk=int(value)).first()
            if dataset is None:
                raise CommandError(f"no dataset {value}")
            return dataset
        path = Path(value)
        if not path.exists():
            raise CommandError(f"{value} is neither a dataset id nor a file or folder")
        return self._import(path, user)

    def _import(self, path: Path, user) -> Dataset:
        """Import a file through the same service as an upload, here and now."""
        from ferweb.datasets import services as dataset_services
        from fercore.readers import DatasetError

        if path.is_dir():
            raise CommandError("zip the folder first (the import takes zip archives and CSV files)")
        self.stdout.write(f"importing {path} ...")
        try:
            with open(path, "rb") as handle:
                dataset = dataset_services.dataset_create(owner=user, name="", upload=File(handle, name=path.name))
        except DatasetError as exc:
            raise CommandError(f"cannot import {path}: {exc}") from None
        if dataset_services.dataset_imports.claim(dataset.pk, worker=f"cli-{socket.gethostname()}"):
            dataset = dataset_services.dataset_import(dataset_id=dataset.pk)
        while dataset.status == Dataset.Status.IMPORTING:  # a worker took it first
            time.sleep(1)
            dataset.refresh_from_db()
        if dataset.status != Dataset.Status.READY:
            raise CommandError(f"import failed: {dataset.human_readable_error}")
        self.stdout.write(f"dataset {dataset.pk}: {dataset.num_items} faces {dataset.class_counts}")
        return dataset
