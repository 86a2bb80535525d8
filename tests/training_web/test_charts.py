"""The charts of the run, compare and labeling pages in headless Chromium, read as a person reads them:
series and their styles, axis titles and numbers, values on hover, the PNG download, a dot for a lone
epoch, labels that do not collide, faint occlusion maps that stay faint; and the chart library served
as one of the app's own files."""
import base64
import gzip
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from fercore.classes import CLASSES
from tests.conftest import signup
from tests.training_web.chart_reading import (
    axis_title,
    clipped_labels,
    figure,
    hover,
    modebar_buttons,
    overlapping_labels,
    series,
    shot,
    texts,
    ticks,
    wait_for_chart,
)
from tests.training_web.conftest import make_ready_dataset
from training_jobs.models import TrainingRun

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


def class_colour(page, name):
    """A class's colour as the stylesheet defines it (--angry, ...)."""
    return page.evaluate(f"getComputedStyle(document.documentElement).getPropertyValue('--{name}').trim()")


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


@pytest.mark.browser
def test_a_one_epoch_run_shows_its_point_labelled_axes_and_faint_occlusion(live_asgi, user_page):
    page, user, dataset = user_page
    run = finished_run(user, dataset, [2.3], [occlusion_item("happy", 0.001), occlusion_item("sad", 0.002)])
    page.goto(f"{live_asgi.url}/runs/{run.pk}/")
    page.wait_for_selector("#evaluation:not([hidden])")
    wait_for_chart(page, "#roc-chart")
    shot(page, "run-one-epoch")

    facts = page.inner_text("#run-facts")
    assert "1 epoch" in facts and "1 epochs" not in facts
    # Training and validation of one run: one colour, solid against dashed, a dot for the lone epoch.
    for chart, metric in (("#loss-chart", "loss"), ("#accuracy-chart", "accuracy")):
        fig = figure(page, chart)
        (train, train_dash, train_colour), (val, val_dash, val_colour) = series(fig)
        assert (train, val) == (f"training {metric}", f"validation {metric}")
        assert train_colour == val_colour and train_dash != val_dash
        assert all("markers" in t["mode"] for t in fig["data"])
        assert [t["marker"]["symbol"] for t in fig["data"]] == ["circle-open", "circle"]  # told apart without a line
        assert (axis_title(fig, "xaxis"), axis_title(fig, "yaxis")) == ("epoch", metric)
        assert ticks(page, chart, "x") == ["1"], chart
    assert hover(page, "#loss-chart") == ["1", "training loss : 2.300", "validation loss : 2.070"]
    assert ticks(page, "#accuracy-chart", "y") == ["100%", "80%", "60%", "40%", "20%", "0%"]
    assert ticks(page, "#roc-chart", "x") == ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]
    roc = figure(page, "#roc-chart")
    assert [name for name, _, _ in series(roc)] == [f"{c} (AUC 0.800)" for c in CLASSES]
    assert [colour for _, _, colour in series(roc)] == [class_colour(page, c) for c in CLASSES]
    assert (axis_title(roc, "xaxis"), axis_title(roc, "yaxis")) == ("false positive rate", "true positive rate")
    lines = hover(page, "#roc-chart", curve=0, point=1)
    assert "false positive rate 0.20" in lines and "true positive rate 0.70" in lines and len(lines) == 3
    assert any(line.endswith("(AUC 0.800)") for line in lines)  # the seven curves coincide here: one of them answers

    # Drops of a tenth of a percentage point are noise: barely tinted, said so under the heading.
    assert max(overlay_peaks(page)) <= 10
    assert "drops by 0.05 or more" in page.inner_text("#occlusion-scale")

    for matrix, cell in (("#confusion-counts", "9"), ("#confusion-normalized", "0.60")):
        fig = figure(page, matrix)
        assert (axis_title(fig, "xaxis"), axis_title(fig, "yaxis")) == ("predicted class", "true class")
        assert ticks(page, matrix, "x") == list(CLASSES) and ticks(page, matrix, "y") == list(CLASSES)
        assert overlapping_labels(page, f"{matrix} .xtick text") == []
        assert clipped_labels(page, f"{matrix} text") == []
        assert hover(page, matrix, point=[0, 0]) == [f"true angry, predicted angry: {cell}"]
    assert figure(page, "#confusion-counts")["data"][0]["z"] == metrics([])["confusion_matrix"]

    # Every chart offers the PNG download, zoom and a reset, and keeps its data on this site.
    for chart in ("#loss-chart", "#accuracy-chart", "#confusion-counts", "#roc-chart"):
        buttons = modebar_buttons(page, chart)
        assert "Download plot as a PNG" in buttons and "Zoom" in buttons and "Reset axes" in buttons, buttons
        assert not any(title.startswith("Share") for title in buttons)  # nothing uploads the figure elsewhere
    page.hover("#loss-chart .nsewdrag")
    with page.expect_download() as download:
        page.click("#loss-chart .modebar-btn[data-title='Download plot as a PNG']")
    assert download.value.suggested_filename == "loss-chart.png"
    assert Path(download.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.browser
def test_compare_gives_each_run_a_colour_with_dashed_training_and_solid_validation(live_asgi, user_page):
    page, user, dataset = user_page
    long = finished_run(user, dataset, [4.3, 3.1, 2.4, 2.0, 1.8, 1.6, 1.5, 1.4, 1.3, 1.25, 1.2, 1.15],
                        [occlusion_item("happy", 0.4), occlusion_item("sad", 0.001)])
    short = finished_run(user, dataset, [2.0], [])
    page.goto(f"{live_asgi.url}/runs/compare/?ids={long.pk},{short.pk}")
    wait_for_chart(page, "#compare-confusion > div:nth-child(2) .chart")
    shot(page, "compare")

    for chart, metric in (("#compare-loss", "loss"), ("#compare-accuracy", "accuracy")):
        lines = series(figure(page, chart))
        assert [name for name, _, _ in lines] == [f"#{r.pk} {kind} {metric}" for r in (long, short)
                                                  for kind in ("training", "validation")]
        (_, long_train, long_colour), (_, long_val, long_colour_val), (_, _, short_colour), _ = lines
        assert long_colour == long_colour_val != short_colour
        assert (long_train, long_val) == ("dash", "solid")
        assert ticks(page, chart, "x") == ["1", "3", "5", "7", "9", "11"]  # whole epochs, from the first
    assert ticks(page, "#compare-loss", "y")[-1] == "0"
    assert ticks(page, "#compare-accuracy", "y") == ["100%", "80%", "60%", "40%", "20%", "0%"]
    # The one-epoch run's curves are single points: each gets a dot.
    short_traces = figure(page, "#compare-loss")["data"][2:]
    assert [len(t["x"]) for t in short_traces] == [1, 1] and all("markers" in t["mode"] for t in short_traces)
    for n in (1, 2):
        matrix = f"#compare-confusion > div:nth-child({n}) .chart"
        assert ticks(page, matrix, "x") == list(CLASSES)
        assert overlapping_labels(page, f"{matrix} .xtick text") == []
        assert clipped_labels(page, f"{matrix} text") == []

    # One colour scale for every face: the strong map is full red, the faint one stays faint.
    page.goto(f"{live_asgi.url}/runs/{long.pk}/")
    page.wait_for_selector("#evaluation:not([hidden])")
    strong, faint = overlay_peaks(page)
    assert strong == 200 and faint <= 2
    assert "drops by 0.40 or more" in page.inner_text("#occlusion-scale")
    assert ticks(page, "#loss-chart", "x")[0] == "1"
    assert all(t["mode"] == "lines+markers" for t in figure(page, "#loss-chart")["data"])  # short series: a dot per epoch


@pytest.mark.browser
def test_a_run_page_fits_a_phone_and_its_charts_follow_the_width(live_asgi, browser_factory):
    context = browser_factory().new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        signup(page, live_asgi.url, "phil")
        user = get_user_model().objects.get(username="phil")
        run = finished_run(user, make_ready_dataset(user, per_class=4), [2.3, 1.9, 1.5], [])
        connections.close_all()
        page.goto(f"{live_asgi.url}/runs/{run.pk}/")
        page.wait_for_selector("#evaluation:not([hidden])")
        wait_for_chart(page, "#confusion-normalized")
        shot(page, "run-phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        for chart in ("#loss-chart", "#confusion-normalized", "#roc-chart"):
            box = page.locator(f"{chart} .main-svg").first.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, chart
        assert overlapping_labels(page, "#confusion-normalized .xtick text") == []
        assert clipped_labels(page, "#confusion-normalized text") == []
    finally:
        context.close()


@pytest.mark.browser
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


@pytest.mark.browser
def test_the_labeling_bar_chart_shows_each_class_in_its_colour_with_its_count(live_asgi, user_page):
    from ferweb.labeling.models import LabelingFace, LabelingSet

    page, user, _ = user_page
    labeling_set = LabelingSet.objects.create(owner=user, name="party photos")
    crop = cv2.imencode(".png", np.full((48, 48), 128, np.uint8))[1].tobytes()
    for label, n in (("angry", 3), ("disgust", 1), ("surprise", 7), ("neutral", 5)):
        for i in range(n):
            LabelingFace.objects.create(labeling_set=labeling_set, crop_png=crop, source_name=f"{label}{i}.jpg",
                                        confirmed_label=CLASSES.index(label), status="confirmed")
    page.goto(f"{live_asgi.url}/labeling/{labeling_set.pk}/")
    fig = figure(page, "#confirmed-chart")
    shot(page, "labeling")

    assert ticks(page, "#confirmed-chart", "x") == list(CLASSES)
    assert overlapping_labels(page, "#confirmed-chart .xtick text") == []
    assert clipped_labels(page, "#confirmed-chart .xtick text") == []
    assert ticks(page, "#confirmed-chart", "y") == ["8", "6", "4", "2", "0"]  # no tick between whole faces
    assert texts(page, "#confirmed-chart .bartext") == ["3", "1", "0", "0", "0", "7", "5"]
    assert fig["data"][0]["marker"]["color"] == [class_colour(page, c) for c in CLASSES]
    assert axis_title(fig, "yaxis") == "confirmed faces"
    assert sorted(hover(page, "#confirmed-chart", point=5)) == ["confirmed", "surprise: 7"]


@pytest.mark.browser
def test_the_fetch_helper_sends_the_csrf_token_and_rejects_with_the_api_detail(live_asgi, user_page):
    page, user, dataset = user_page
    run = finished_run(user, dataset, [2.0], [], status="running")
    page.goto(f"{live_asgi.url}/runs/{run.pk}/")
    missing = page.evaluate("FerWeb.api('/api/runs/999999/').catch((e) => [e.message, e.status, e.code])")
    assert missing[1] == 404 and missing[2] and missing[0] and not missing[0].startswith("The server answered")
    answer = page.evaluate(f"FerWeb.api('/api/runs/{run.pk}/cancel/', {{ method: 'POST', body: {{}} }})")
    assert answer["id"] == run.pk
    run.refresh_from_db()
    assert run.cancel_requested


def test_plotly_is_served_from_the_installed_package_gzipped_and_cached_for_a_year(client):
    from frontend.views import plotly_bundle, plotly_version

    answer = client.get(f"/static-lib/plotly.min.js?v={plotly_version()}", HTTP_ACCEPT_ENCODING="gzip, br")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("text/javascript")
    assert answer["Content-Encoding"] == "gzip" and "immutable" in answer["Cache-Control"]
    assert gzip.decompress(answer.content) == plotly_bundle().read_bytes()
    plain = client.get("/static-lib/plotly.min.js")  # an old or missing version: a short cache only
    assert b"plotly.js" in plain.content[:200] and "immutable" not in plain["Cache-Control"]


def test_only_pages_with_charts_load_plotly(alice, client):
    client.force_login(alice)
    script = re.compile(r'<script src="/static-lib/plotly\.min\.js\?v=[^"]+" defer>')
    assert not script.search(client.get("/runs/").content.decode())
    assert not script.search(client.get("/predict/").content.decode())
    compare = client.get("/runs/compare/?ids=").content.decode()
    assert script.search(compare) and compare.index("plotly.min.js") < compare.index("js/charts.js")
    # The class list comes once, from fercore/classes.py, on every page.
    assert compare.count('id="fer-classes"') == 1 and '["angry", "disgust", "fear"' in compare


def test_the_pngs_use_the_class_colours_of_the_stylesheet():
    from django.conf import settings

    from training_jobs.figures import CLASS_COLOURS

    css = (settings.BASE_DIR / "frontend" / "static" / "css" / "app.css").read_text()
    assert CLASS_COLOURS == {c: re.search(rf"--{c}: (#[0-9a-f]{{6}})", css).group(1) for c in CLASSES}
