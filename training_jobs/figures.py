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
