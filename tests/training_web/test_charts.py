"""The charts of the run, compare and labeling pages in headless Chromium, read as a person reads them:
axis numbers, a dot for a lone epoch, labels that do not collide, faint occlusion maps that stay faint."""
import base64

import cv2
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from ferweb.classes import CLASSES
from tests.conftest import signup
from tests.training_web.chart_reading import clipped_labels, overlapping_labels, shot, texts
from tests.training_web.conftest import make_ready_dataset
from training_jobs.models import TrainingRun

pytestmark = pytest.mark.browser

FACE = "data:image/png;base64," + base64.b64encode(cv2.imencode(".png", np.full((48, 48), 128, np.uint8))[1]).decode()


def history(losses):
    """One run.epoch event per loss, accuracy rising as the loss falls."""
    n = len(losses)
    return [{"type": "run.epoch", "epoch": i + 1, "epochs": n, "train_loss": loss, "val_loss": loss * 0.9,
             "train_accuracy": 0.2 + 0.05 * i, "val_accuracy": 0.18 + 0.05 * i, "best_val_accuracy": 0.18 + 0.05 * i}
            for i, loss in enumerate(losses)]


def occlusion_item(label, peak):
    """A 24x24 map of drops of p(true class) whose largest value is peak, in the middle of the face."""
    drops = np.zeros((24, 24))
    drops[10:14, 8:16] = peak
    return {"label": label, "predicted": label, "base_prob": 0.6, "face": FACE, "map": drops.tolist()}


def metrics(occlusion):
    k = len(CLASSES)
    counts = (np.eye(k) * 8 + 1).astype(int)
    return {
        "accuracy": 0.5, "macro_f1": 0.5, "macro_auc": 0.8, "micro_auc": 0.8, "ece": 0.05, "test_split": "test",
        "confusion_matrix": counts.tolist(),
        "confusion_matrix_normalized": np.round(counts / counts.sum(1, keepdims=True), 4).tolist(),
        "per_class": {c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "specificity": 0.9, "support": 15} for c in CLASSES},
        "roc": {c: {"fpr": [0, 0.2, 1], "tpr": [0, 0.7, 1], "auc": 0.8} for c in CLASSES},
        "occlusion": occlusion,
    }


def finished_run(owner, dataset, losses, occlusion, status="succeeded"):
    return TrainingRun.objects.create(
        owner=owner, dataset=dataset, name=f"{len(losses)} epoch run", architecture="light_residual", optimizer="sgd",
        config={"architecture": "light_residual", "optimizer": "sgd", "epochs": len(losses), "batch_size": 16,
                "learning_rate": 0.01},
        status=status, progress=100, history=history(losses), metrics=metrics(occlusion), best_epoch=len(losses),
        best_val_accuracy=0.2,
    )


def overlay_peaks(page):
    """The strongest red of each face's occlusion overlay, as canvas alpha 0-255."""
    return page.eval_on_selector_all("#occlusion canvas", """canvases => canvases.map((c) => {
        const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
        let most = 0;
        for (let i = 3; i < data.length; i += 4) most = Math.max(most, data[i]);
        return most;
    })""")


@pytest.fixture
def user_page(live_asgi, page):
    signup(page, live_asgi.url, "gail")
    user = get_user_model().objects.get(username="gail")
    yield page, user, make_ready_dataset(user, per_class=4)
    connections.close_all()  # the ORM calls above ran inside Playwright's loop


def test_a_one_epoch_run_shows_its_point_exact_axes_and_faint_occlusion(live_asgi, user_page):
    page, user, dataset = user_page
    run = finished_run(user, dataset, [2.3], [occlusion_item("happy", 0.001), occlusion_item("sad", 0.002)])
    page.goto(f"{live_asgi.url}/runs/{run.pk}/")
    page.wait_for_selector("#evaluation:not([hidden])")
    shot(page, "run-one-epoch")

    facts = page.inner_text("#run-facts")
    assert "1 epoch" in facts and "1 epochs" not in facts
    for chart in ("#loss-chart", "#accuracy-chart"):
        assert page.locator(f"{chart} svg circle.marker").count() == 2, chart  # training and validation
        assert texts(page, f"{chart} .x-tick") == ["1"], chart
    assert texts(page, "#loss-chart .y-tick") == ["0.0", "0.5", "1.0", "1.5", "2.0", "2.5"]
    assert texts(page, "#accuracy-chart .y-tick") == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert texts(page, "#roc-chart .x-tick") == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]

    # Drops of a tenth of a percentage point are noise: barely tinted, said so under the heading.
    assert max(overlay_peaks(page)) <= 10
    assert "drops by 0.05 or more" in page.inner_text("#occlusion-scale")

    for matrix in ("#confusion-counts", "#confusion-normalized"):
        assert texts(page, f"{matrix} .x-label") == list(CLASSES)
        assert overlapping_labels(page, f"{matrix} .x-label") == []
        assert clipped_labels(page, f"{matrix} text") == []


def test_compare_shows_integer_epochs_nice_loss_axis_and_readable_small_matrices(live_asgi, user_page):
    page, user, dataset = user_page
    long = finished_run(user, dataset, [4.3, 3.1, 2.4, 2.0, 1.8, 1.6, 1.5, 1.4, 1.3, 1.25, 1.2, 1.15],
                        [occlusion_item("happy", 0.4), occlusion_item("sad", 0.001)])
    short = finished_run(user, dataset, [2.0], [])
    page.goto(f"{live_asgi.url}/runs/compare/?ids={long.pk},{short.pk}")
    page.wait_for_selector("#compare-confusion svg")
    shot(page, "compare")

    assert texts(page, "#compare-loss .y-tick") == ["0", "1", "2", "3", "4", "5"]
    assert texts(page, "#compare-accuracy .y-tick") == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    assert texts(page, "#compare-loss .x-tick") == ["1", "3", "5", "7", "9", "11"]
    # The one-epoch run's curves are single points: each gets a dot (training and validation loss).
    assert page.locator("#compare-loss circle.marker[r='4']").count() == 2
    assert page.locator("#compare-accuracy circle.marker[r='4']").count() == 1
    for svg in range(2):
        matrix = f"#compare-confusion > div:nth-child({svg + 1})"
        assert texts(page, f"{matrix} .x-label") == list(CLASSES)
        assert overlapping_labels(page, f"{matrix} .x-label") == []
        assert clipped_labels(page, f"{matrix} text") == []

    # One colour scale for every face: the strong map is full red, the faint one stays faint.
    page.goto(f"{live_asgi.url}/runs/{long.pk}/")
    page.wait_for_selector("#evaluation:not([hidden])")
    strong, faint = overlay_peaks(page)
    assert strong == 200 and faint <= 2
    assert "drops by 0.40 or more" in page.inner_text("#occlusion-scale")
    assert texts(page, "#loss-chart .x-tick")[0] == "1"
    assert page.locator("#loss-chart circle.marker").count() == 24  # short series: a dot per epoch


def test_cancel_asks_first_and_a_no_leaves_the_run_alone(live_asgi, user_page):
    page, user, dataset = user_page
    run = finished_run(user, dataset, [2.0], [], status="running")  # no worker holds it: nothing ends it by itself
    page.goto(f"{live_asgi.url}/runs/{run.pk}/")
    cancels, questions = [], []
    page.on("request", lambda r: cancels.append(r.url) if r.url.endswith("/cancel/") else None)

    page.once("dialog", lambda d: (questions.append(d.message), d.dismiss()))
    page.click("#cancel-run")
    page.wait_for_timeout(300)
    assert questions and f"Cancel run {run.pk}?" in questions[0]
    assert cancels == [] and page.inner_text("#cancel-run") == "Cancel"
    run.refresh_from_db()
    assert not run.cancel_requested

    page.once("dialog", lambda d: d.accept())
    page.click("#cancel-run")
    page.wait_for_function("document.querySelector('#cancel-run').textContent === 'Cancelling…'")
    page.wait_for_timeout(300)
    assert len(cancels) == 1
    run.refresh_from_db()
    assert run.cancel_requested


def test_the_labeling_bar_chart_keeps_seven_class_names_apart(live_asgi, user_page):
    from ferweb.labeling.models import LabelingFace, LabelingSet

    page, user, _ = user_page
    labeling_set = LabelingSet.objects.create(owner=user, name="party photos")
    crop = cv2.imencode(".png", np.full((48, 48), 128, np.uint8))[1].tobytes()
    for label, n in (("angry", 3), ("disgust", 1), ("surprise", 7), ("neutral", 5)):
        for i in range(n):
            LabelingFace.objects.create(labeling_set=labeling_set, crop_png=crop, source_name=f"{label}{i}.jpg",
                                        confirmed_label=CLASSES.index(label), status="confirmed")
    page.goto(f"{live_asgi.url}/labeling/{labeling_set.pk}/")
    page.wait_for_selector("#confirmed-chart svg")
    shot(page, "labeling")

    assert texts(page, "#confirmed-chart .x-label") == list(CLASSES)
    assert overlapping_labels(page, "#confirmed-chart .x-label") == []
    assert clipped_labels(page, "#confirmed-chart text") == []
    assert texts(page, "#confirmed-chart .y-tick") == ["0", "2", "4", "6", "8"]
    assert texts(page, "#confirmed-chart .bar-value") == ["3", "1", "0", "0", "0", "7", "5"]
