"""PNG figures of a run's evaluation (for docs and model cards), drawn with Pillow."""
from pathlib import Path

from PIL import Image, ImageDraw

from ferweb.classes import CLASSES

COLOURS = ["#e03131", "#66a80f", "#7048e8", "#f59f00", "#1c7ed6", "#d6336c", "#868e96"]


def draw_confusion_matrix(normalized: list[list[float]], path: Path, cell: int = 64) -> None:
    """Row-normalised confusion matrix: rows are the true class, columns the predicted one."""
    left, top = 90, 40
    size = len(CLASSES) * cell
    image = Image.new("RGB", (left + size + 20, top + size + 40), "white")
    draw = ImageDraw.Draw(image)
    for j, name in enumerate(CLASSES):
        draw.text((left + j * cell + 8, top - 18), name, fill="#333")
        draw.text((8, top + j * cell + cell // 2 - 6), name, fill="#333")
    for i, row in enumerate(normalized):
        for j, value in enumerate(row):
            shade = int(255 - 200 * min(1.0, value))
            x, y = left + j * cell, top + i * cell
            draw.rectangle([x, y, x + cell - 2, y + cell - 2], fill=(shade, shade, 255))
            draw.text((x + cell // 2 - 14, y + cell // 2 - 6), f"{value:.2f}", fill="white" if value > 0.55 else "#111")
    draw.text((left, top + size + 14), "predicted class (columns) / true class (rows), row-normalised", fill="#555")
    image.save(path)


def draw_roc_curves(roc: dict, macro_auc: float | None, path: Path, side: int = 420) -> None:
    """One-vs-rest ROC curve per class, with its AUC in the legend."""
    left, top = 50, 20
    image = Image.new("RGB", (left + side + 190, top + side + 50), "white")
    draw = ImageDraw.Draw(image)
    draw.rectangle([left, top, left + side, top + side], outline="#999")
    draw.line([left, top + side, left + side, top], fill="#ccc")
    for k in range(0, 11, 2):
        draw.text((left + k * side // 10 - 8, top + side + 6), f"{k / 10:.1f}", fill="#555")
        draw.text((left - 30, top + side - k * side // 10 - 6), f"{k / 10:.1f}", fill="#555")
    for index, name in enumerate(CLASSES):
        curve = roc.get(name)
        if not curve or curve.get("auc") is None:
            continue  # no faces of this class (or only these) in the evaluation: no curve to draw
        points = [(left + fpr * side, top + side - tpr * side) for fpr, tpr in zip(curve["fpr"], curve["tpr"])]
        draw.line(points, fill=COLOURS[index], width=2)
        draw.text((left + side + 16, top + 10 + index * 18), f"{name}: AUC {curve['auc']:.3f}", fill=COLOURS[index])
    if macro_auc is not None:
        draw.text((left + side + 16, top + 10 + len(CLASSES) * 18 + 8), f"macro AUC {macro_auc:.3f}", fill="#111")
    draw.text((left + side // 2 - 100, top + side + 26), "false positive rate (x) / true positive rate (y)", fill="#555")
    image.save(path)


def _panel(draw, box, series: list[tuple[str, str, list[float]]], title: str, mark: int | None,
           legend_at_bottom: bool = False) -> None:
    """Line chart of several per-epoch series in one box, y scaled to their joint range."""
    left, top, right, bottom = box
    values = [v for _, _, points in series for v in points]
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    epochs = max(len(points) for _, _, points in series)
    x_of = lambda i: left + (right - left) * i / max(epochs - 1, 1)  # noqa: E731
    y_of = lambda v: bottom - (bottom - top) * (v - low) / span  # noqa: E731
    draw.rectangle(box, outline="#999")
    draw.text((left, top - 16), title, fill="#111")
    for k in range(5):
        value = low + span * k / 4
        draw.text((left - 44, y_of(value) - 6), f"{value:.3f}", fill="#555")
    for k in range(5):
        epoch = round(1 + (epochs - 1) * k / 4)
        draw.text((x_of(epoch - 1) - 6, bottom + 6), str(epoch), fill="#555")
    if mark:
        draw.line([x_of(mark - 1), top, x_of(mark - 1), bottom], fill="#bbb", width=1)
    legend_top = bottom - 12 - 16 * len(series) if legend_at_bottom else top + 8  # away from rising curves
    for offset, (name, colour, points) in enumerate(series):
        draw.line([(x_of(i), y_of(v)) for i, v in enumerate(points)], fill=colour, width=2)
        draw.text((right - 90, legend_top + offset * 16), name, fill=colour)


def draw_training_curves(history: list[dict], path: Path, width: int = 460, height: int = 300) -> None:
    """Loss and accuracy per epoch, training against validation; a grey line at the best epoch."""
    epochs = history  # a run's history holds only its run.epoch events
    if not epochs:
        raise ValueError("the run has no finished epochs to draw")
    best = epochs[-1].get("best_epoch")
    image = Image.new("RGB", (2 * width + 140, height + 70), "white")
    draw = ImageDraw.Draw(image)
    pick = lambda key: [e[key] for e in epochs]  # noqa: E731
    _panel(draw, (60, 30, 60 + width, 30 + height),
           [("train", COLOURS[4], pick("train_loss")), ("validation", COLOURS[0], pick("val_loss"))], "loss", best)
    _panel(draw, (width + 120, 30, 2 * width + 120, 30 + height),
           [("train", COLOURS[4], pick("train_accuracy")), ("validation", COLOURS[0], pick("val_accuracy"))],
           "accuracy", best, legend_at_bottom=True)
    draw.text((60, height + 52), f"epoch (x); grey line: best validation epoch ({best}), the checkpoint kept", fill="#555")
    image.save(path)
