"""PNG figures of a run's evaluation (for docs and model cards), drawn with matplotlib's Agg canvas.

Figures are built object by object (Figure + FigureCanvasAgg), never through pyplot, so no global
backend or figure registry is touched and nothing needs a display.
"""
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from fercore.classes import CLASSES

# The classes' colours, as the web pages draw them (the --angry... variables of frontend/static/css/app.css).
CLASS_COLOURS = {"angry": "#e03131", "disgust": "#66a80f", "fear": "#7048e8", "happy": "#f59f00",
                 "sad": "#1c7ed6", "surprise": "#d6336c", "neutral": "#868e96"}
RUN_COLOUR = "#1c7ed6"  # one run's curves: training solid, validation dashed, as on its page
DPI = 100  # pixels per inch: the size arguments below are in pixels


def _figure(width_px: float, height_px: float) -> Figure:
    figure = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> None:
    figure.savefig(path, format="png", dpi=DPI, facecolor="white")


def draw_confusion_matrix(normalized: list[list[float]], path: Path, cell: int = 64) -> None:
    """Row-normalised confusion matrix: rows are the true class, columns the predicted one."""
    _save(confusion_matrix_figure(normalized, cell), path)


def confusion_matrix_figure(normalized: list[list[float]], cell: int = 64) -> Figure:
    """The confusion matrix's figure, with both axes named: "true class" down the side, "predicted class" below."""
    size = len(CLASSES) * cell
    figure = _figure(size + 130, size + 110)
    ax = figure.add_subplot()
    image = ax.imshow(normalized, cmap="Blues", vmin=0.0, vmax=1.0)
    for i, row in enumerate(normalized):
        for j, value in enumerate(row):
            ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=9,
                    color="white" if value > 0.55 else "#1d2330")
    ax.set_xticks(range(len(CLASSES)), CLASSES, rotation=35, ha="right", rotation_mode="anchor")
    ax.set_yticks(range(len(CLASSES)), CLASSES)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix, row-normalised", fontsize=11)
    figure.colorbar(image, ax=ax, shrink=0.8, label="share of the true class")
    return figure


def draw_roc_curves(roc: dict, macro_auc: float | None, path: Path, side: int = 420) -> None:
    """One-vs-rest ROC curve per class, with its AUC in the legend."""
    figure = _figure(side + 240, side + 90)
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", linewidth=1, color="#ced4da", label="chance")
    for name in CLASSES:
        curve = roc.get(name)
        if not curve or curve.get("auc") is None:
            continue  # no faces of this class (or only these) in the evaluation: no curve to draw
        ax.plot(curve["fpr"], curve["tpr"], linewidth=2, color=CLASS_COLOURS[name], label=f"{name}: AUC {curve['auc']:.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(color="#eef0f3")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    title = "ROC curves, one vs rest" + (f" (macro AUC {macro_auc:.3f})" if macro_auc is not None else "")
    ax.set_title(title, fontsize=11)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), frameon=False, fontsize=9)
    _save(figure, path)


def draw_training_curves(history: list[dict], path: Path, width: int = 460, height: int = 300) -> None:
    """Loss and accuracy per epoch, training (solid) against validation (dashed); a grey line at the best epoch."""
    epochs = history  # a run's history holds only its run.epoch events
    if not epochs:
        raise ValueError("the run has no finished epochs to draw")
    best = epochs[-1].get("best_epoch")
    figure = _figure(2 * width + 140, height + 70)
    numbers = [e.get("epoch", i + 1) for i, e in enumerate(epochs)]
    for column, metric in enumerate(("loss", "accuracy")):
        ax = figure.add_subplot(1, 2, column + 1)
        marker = "o" if len(epochs) <= 24 else None  # a lone epoch still shows
        ax.plot(numbers, [e[f"train_{metric}"] for e in epochs], color=RUN_COLOUR, linewidth=2, marker=marker,
                markersize=3, label="training")
        ax.plot(numbers, [e[f"val_{metric}"] for e in epochs], color=RUN_COLOUR, linewidth=2, linestyle="--",
                marker=marker, markersize=3, label="validation")
        if best:
            ax.axvline(best, color="#adb5bd", linewidth=1, label=f"best epoch ({best}), the checkpoint kept")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(color="#eef0f3")
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.set_title(metric, fontsize=11)
        ax.legend(loc="best", frameon=False, fontsize=9)
    _save(figure, path)
