"""`manage.py shipped_face_prints --dataset fer2013-train.zip`: write the prints of the faces the
shipped model trained on (inference/models/default.faces.npy), so the label-error finder can tell
when its scores are in-sample on any dataset holding them (fercore.face_prints).

The training faces are the dataset minus the hold-out its card records (validation fraction and
seed); the command checks that their number is the card's. publish_default_model writes the same
file for a newly published run.
"""
import json
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from fercore.face_prints import save_prints


class Command(BaseCommand):
    help = "Write the prints of the shipped model's training faces next to it (default.faces.npy)."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", required=True, help="The dataset file the shipped model trained on.")
        parser.add_argument("--model", default=str(settings.FERWEB_DEFAULT_MODEL), help="ONNX model (default: shipped).")
        parser.add_argument("--validation-fraction", type=float, default=0.1)
        parser.add_argument("--split-seed", type=int, default=42, help="The seed of the model's own hold-out.")

    def handle(self, *args, **opts):
        from training_jobs.ml.data import load_dataset_file, split_data

        model = Path(opts["model"])
        card = json.loads(model.with_suffix(".json").read_text())
        data = load_dataset_file(opts["dataset"])
        splits = split_data(data, validation_fraction=opts["validation_fraction"], seed=opts["split_seed"])
        expected = ((card.get("data") or {}).get("splits") or {}).get("train")
        if expected is not None and expected != len(splits.train):
            raise CommandError(f"{len(splits.train)} training faces, but the card says the model trained on {expected}: "
                               "another dataset, fraction or seed")
        out = model.with_suffix(".faces.npy")
        distinct = save_prints(data.pixels[splits.train], out)
        self.stdout.write(f"{len(splits.train):,} training faces ({distinct:,} distinct) -> {out}")
