"""Time the real import service on the FER2013 zip, and the load that training does afterwards."""
import resource
import shutil
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from ferweb.datasets import services
from ferweb.datasets.models import Dataset
from fercore.readers import check_dataset
from ferweb.datasets.selectors import dataset_arrays

DEFAULT_ZIP = settings.BASE_DIR.parent / "shared" / "datasets" / "fer2013" / "fer2013-train.zip"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class Command(BaseCommand):
    help = "Import a dataset zip through the import service in this process and print time, memory and counts."

    def add_arguments(self, parser):
        parser.add_argument("--zip", default=str(DEFAULT_ZIP), help=f"dataset to import (default: {DEFAULT_ZIP})")
        parser.add_argument("--keep", action="store_true", help="keep the imported dataset instead of deleting it")
        parser.add_argument("--owner", default="benchmark", help="user that owns the dataset (created if missing)")

    def handle(self, *args, **options):
        path = Path(options["zip"])
        if not path.exists():
            raise CommandError(f"{path} does not exist; pass --zip PATH")
        owner, _ = get_user_model().objects.get_or_create(username=options["owner"])
        rss_before = peak_rss_mb()

        started = time.perf_counter()
        check_dataset(path, limits=services.import_limits())
        check_s = time.perf_counter() - started

        dataset = Dataset.objects.create(owner=owner, name=f"benchmark {path.name}", source_name=path.name)
        with open(path, "rb") as handle:
            dataset.source.save(path.name, File(handle), save=True)
        # Claimed here, so no worker takes it: the import runs in this process, start to end.
        if not services.dataset_imports.claim(dataset.pk, worker="benchmark_import"):
            raise CommandError("could not claim the import")
        started = time.perf_counter()
        dataset = services.dataset_import(dataset_id=dataset.pk)
        import_s = time.perf_counter() - started
        rss_import = peak_rss_mb()
        if dataset.status != Dataset.Status.READY:
            raise CommandError(f"import failed: {dataset.error}: {dataset.human_readable_error}")

        started = time.perf_counter()
        pixels, labels, splits, ids = dataset_arrays(dataset)
        load_s = time.perf_counter() - started

        quality = dataset.report["quality"]
        lines = [
            f"file:                {path} ({path.stat().st_size / 1024**2:.1f} MB)",
            f"database:            {settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}",
            f"upload checks:       {check_s:.2f} s",
            f"import wall time:    {import_s:.2f} s (read, convert, quality, write array and items)",
            f"peak RSS:            {rss_import:.0f} MB (process before import: {rss_before:.0f} MB)",
            f"items:               {dataset.num_items}",
            f"class counts:        {', '.join(f'{k} {v}' for k, v in dataset.class_counts.items())}",
            f"split counts:        {dataset.split_counts}",
            f"quality:             blank {quality['blank']['count']}, duplicates within splits "
            f"{quality['duplicates_within_split']['extra_copies']}, across splits "
            f"{quality['duplicates_across_splits']['extra_copies']}, skipped {dataset.report['skipped']['count']}",
            f"dataset_arrays load: {load_s:.3f} s -> pixels {pixels.shape} {pixels.dtype}, labels {labels.shape}, "
            f"splits {splits.shape}, ids {ids.shape}",
        ]
        self.stdout.write("\n".join(lines))
        if options["keep"]:
            self.stdout.write(f"kept as dataset {dataset.pk}")
        else:
            storage = dataset.storage_dir
            dataset.delete()
            shutil.rmtree(storage, ignore_errors=True)
