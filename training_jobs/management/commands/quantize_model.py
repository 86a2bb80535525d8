"""quantize_model with --run: compare on a training run's own hold-out, calibrate on its training faces.

    python manage.py quantize_model --model inference/models/default.onnx --run ID

The command lives in inference (serving needs no training app); this one extends it with --run and is
the one Django finds while the training app is installed (it comes before inference in INSTALLED_APPS).
"""
import numpy as np
from django.core.management.base import CommandError

from inference.management.commands import quantize_model


def run_faces(run_id: int, calibration: int, seed: int):
    """(validation faces, labels, calibration faces) of a training run: its hold-out and its training part."""
    from training_jobs.services import RunFailure, run_splits

    try:
        _run, data, splits = run_splits(run_id)
    except RunFailure as exc:
        raise CommandError(str(exc)) from None
    train = np.random.default_rng(seed).permutation(splits.train)[:calibration]
    return data.pixels[splits.val], data.labels[splits.val], data.pixels[np.sort(train)]


class Command(quantize_model.Command):
    def add_face_sources(self, group) -> None:
        group.add_argument("--run", type=int,
                           help="Training run whose hold-out compares and whose training faces calibrate.")
        super().add_face_sources(group)

    def pick_faces(self, opts):
        if opts.get("run") is None:
            return super().pick_faces(opts)
        return run_faces(opts["run"], opts["calibration"], opts["seed"])

    def faces_from(self, opts) -> str:
        return f"hold-out of run {opts['run']}" if opts.get("run") is not None else super().faces_from(opts)
