"""The model card's PNG figures: written where asked, valid images of a readable size, a curve per class."""
import numpy as np
import pytest
from PIL import Image

from fercore.classes import CLASSES
from training_jobs.figures import (
    CLASS_COLOURS,
    confusion_matrix_figure,
    draw_confusion_matrix,
    draw_roc_curves,
    draw_training_curves,
)


def image(path):
    with Image.open(path) as picture:
        picture.verify()  # a whole, valid PNG
    with Image.open(path) as picture:
        return picture.format, picture.size, np.asarray(picture.convert("RGB"))


def has_colour(pixels, hex_colour, tolerance=12):
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return bool((np.abs(pixels.astype(int) - rgb).max(axis=2) <= tolerance).any())


def test_the_confusion_matrix_is_a_png_of_about_its_cells_size(tmp_path):
    counts = np.eye(len(CLASSES)) * 8 + 1
    draw_confusion_matrix((counts / counts.sum(1, keepdims=True)).tolist(), tmp_path / "confusion.png")
    kind, (width, height), pixels = image(tmp_path / "confusion.png")
    assert kind == "PNG" and 500 <= width <= 800 and 450 <= height <= 800
    assert pixels.std() > 20  # drawn, not blank


def test_the_confusion_matrix_names_both_axes_and_the_docs_figure_is_drawn_by_it(tmp_path):
    from pathlib import Path

    counts = np.eye(len(CLASSES)) * 8 + 1
    ax = confusion_matrix_figure((counts / counts.sum(1, keepdims=True)).tolist()).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("predicted class", "true class")
    assert [t.get_text() for t in ax.get_yticklabels()] == list(CLASSES)
    # The model card's figure in docs/ comes from this drawing (same size), not an older one without axis names.
    draw_confusion_matrix(counts.tolist(), tmp_path / "fresh.png")
    docs = Path(__file__).resolve().parents[2] / "docs" / "figures" / "default-confusion.png"
    assert image(docs)[1] == image(tmp_path / "fresh.png")[1]


def test_the_roc_figure_draws_each_class_in_its_colour_and_skips_a_class_without_a_curve(tmp_path):
    roc = {c: {"fpr": [0, 0.2, 1], "tpr": [0, 0.7, 1], "auc": 0.8} for c in CLASSES}
    roc["disgust"] = {"fpr": [], "tpr": [], "auc": None}  # no disgusted face in the evaluation
    draw_roc_curves(roc, 0.8, tmp_path / "roc.png")
    kind, (width, height), pixels = image(tmp_path / "roc.png")
    assert kind == "PNG" and 550 <= width <= 900 and 400 <= height <= 700
    assert has_colour(pixels, CLASS_COLOURS["happy"]) and has_colour(pixels, CLASS_COLOURS["neutral"])
    assert not has_colour(pixels, CLASS_COLOURS["disgust"], tolerance=4)


def test_training_curves_need_an_epoch_and_draw_one(tmp_path):
    with pytest.raises(ValueError, match="no finished epochs"):
        draw_training_curves([], tmp_path / "none.png")
    history = [{"type": "run.epoch", "epoch": 1, "train_loss": 1.9, "val_loss": 1.7, "train_accuracy": 0.3,
                "val_accuracy": 0.35, "best_epoch": 1}]
    draw_training_curves(history, tmp_path / "curves.png")
    kind, (width, height), _ = image(tmp_path / "curves.png")
    assert kind == "PNG" and 900 <= width <= 1200 and 300 <= height <= 450
