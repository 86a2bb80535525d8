"""`manage.py shipped_face_prints --dataset fer2013-train.zip`: write the prints of the faces the
shipped model trained on (inference/models/default.faces.npy), so the label-error finder can tell
when its scores are in-sample on any dataset holding them (fercore.face_prints).

The training faces are the dataset minus the hold-out its card records (validation fraction and
seed); the command checks that their number is the card's. publish_default_model writes the same
file for a newly published run.
"""
import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from fercore.face_prints import save_prints
from training_jobs.management.shipped_split import add_split_arguments, shipped_split


class Command(BaseCommand):
    help = "Write the prints of the shipped model's training faces next to it (default.faces.npy)."

    def add_arguments(self, parser):
        add_split_arguments(parser)

    def handle(self, *args, **opts):
        model = Path(opts["model"])
        card = json.loads(model.with_suffix(".json").read_text())
        data, splits = shipped_split(opts)
        expected = ((card.get("data") or {}).get("splits") or {}).get("train")
        if expected is not None and expected != len(splits.train):
            raise CommandError(f"{len(splits.train)} training faces, but the card says the model trained on {expected}: "
                               "another dataset, fraction or seed")
        out = model.with_suffix(".faces.npy")
        distinct = save_prints(data.pixels[splits.train], out)
        self.stdout.write(f"{len(splits.train):,} training faces ({distinct:,} distinct) -> {out}")
