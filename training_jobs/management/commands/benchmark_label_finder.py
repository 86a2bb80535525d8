"""How well the label-error finder finds known errors: flip a seeded share of the labels of faces a
model never trained on, run the finder with that model's probabilities, and count what it finds.

    python manage.py benchmark_label_finder --dataset ../shared/datasets/fer2013/fer2013-train.zip

By default the model is the shipped default model and the faces are its own hold-out (the stratified
10% of the training zip, seed 42, that chose its checkpoint but never trained it); the command checks
that the model scores its recorded accuracy on them, so the hold-out is the right one.
"""
import json
import time

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from fercore.classes import CLASSES
from fercore.label_issues import find_label_issues, flip_labels, recall_at
from inference.engine import classify, load_model
from training_jobs.management.shipped_split import add_split_arguments, shipped_split


class Command(BaseCommand):
    help = "Measure the label-error finder on labels flipped on purpose (a benchmark; prints numbers)."

    def add_arguments(self, parser):
        add_split_arguments(parser)
        parser.add_argument("--share", type=float, default=0.05, help="Share of labels to flip.")
        parser.add_argument("--seed", type=int, default=0, help="Seed of the flips.")
        parser.add_argument("--json", action="store_true", help="Print one JSON object.")

    def handle(self, *args, **opts):
        data, splits = shipped_split(opts)
        holdout = data.subset(splits.val)
        model = load_model(opts["model"], threads=1)
        started = time.perf_counter()
        probs = classify(model, holdout.pixels)
        scoring_s = time.perf_counter() - started
        accuracy = float((probs.argmax(axis=1) == holdout.labels).mean())

        noisy, flipped = flip_labels(holdout.labels, opts["share"], seed=opts["seed"])
        started = time.perf_counter()
        findings = find_label_issues(noisy, probs)
        finder_s = time.perf_counter() - started
        flagged = np.array([issue.index for issue in findings.issues], dtype=np.int64)
        found_5, top_5 = recall_at(findings, flipped, 0.05)
        found_10, top_10 = recall_at(findings, flipped, 0.10)
        suggested = {issue.index: issue.suggested for issue in findings.issues}
        restored = sum(1 for i in flipped if suggested.get(int(i)) == int(holdout.labels[i]))
        result = {
            "faces": len(holdout), "model": str(opts["model"]), "model_accuracy_on_holdout": round(accuracy, 4),
            "flipped": len(flipped), "share": opts["share"], "seed": opts["seed"],
            "top_5_percent": {"size": top_5, "flipped_found": found_5, "recall": round(found_5 / len(flipped), 3)},
            "top_10_percent": {"size": top_10, "flipped_found": found_10,
                               "recall": round(found_10 / len(flipped), 3)},
            "flagged": {"total": len(flagged), "flipped": int(np.isin(flagged, flipped).sum()),
                        "unflipped": int((~np.isin(flagged, flipped)).sum()),
                        "flipped_with_true_label_suggested": restored},
            "seconds": {"scoring": round(scoring_s, 2), "finder": round(finder_s, 2)},
        }
        if opts["json"]:
            self.stdout.write(json.dumps(result))
            return
        if len(flipped) == 0:
            raise CommandError("no labels were flipped: raise --share")
        self.stdout.write(
            f"{len(holdout):,} hold-out faces; the model scores {accuracy:.2%} on their true labels.\n"
            f"Flipped {len(flipped)} labels ({opts['share']:.0%}, seed {opts['seed']}) to another class.\n"
            f"Top 5% of the ranking ({top_5} faces): {found_5} flipped ({found_5 / len(flipped):.1%} of the flips).\n"
            f"Top 10% ({top_10} faces): {found_10} flipped ({found_10 / len(flipped):.1%}).\n"
            f"Flagged by confident learning: {len(flagged)} faces, {result['flagged']['flipped']} of them flipped, "
            f"{result['flagged']['unflipped']} not flipped (FER2013's own label noise or model errors); "
            f"for {restored} flips the suggested label is the true one.\n"
            f"Scoring {scoring_s:.1f} s, finder {finder_s:.2f} s. Classes: {', '.join(CLASSES)}."
        )
