"""The predict and job pages in headless Chromium against Daphne and a worker process."""
import itertools
import zipfile

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from fercore.classes import CLASSES

from ..conftest import signup
from .test_jobs import make_clip

FINISHED = "['succeeded', 'failed', 'cancelled'].includes(document.getElementById('job').dataset.status)"


def wait_until_finished(page, live_asgi, timeout_ms=120_000):
    """Wait for the page to show a finished job; say what the server and worker did when it does not."""
    try:
        page.wait_for_function(FINISHED, timeout=timeout_ms)
    except PlaywrightTimeout:
        pytest.fail(f"the job page shows {page.get_attribute('#job', 'data-status')!r} after {timeout_ms} ms\n"
                    f"worker:\n{live_asgi.worker.output()[-3000:]}\nweb:\n{live_asgi.log.read_text()[-2000:]}")
    status = page.get_attribute("#job", "data-status")
    assert status == "succeeded", page.inner_text("#job-error")


@pytest.mark.browser
def test_a_user_predicts_a_photo_then_follows_a_video_job_to_its_timeline(
    served_model, live_asgi, page, tmp_path, two_face_jpeg
):
    signup(page, live_asgi.url, "pageuser")
    photo = tmp_path / "two.jpg"
    photo.write_bytes(two_face_jpeg)
    page.goto(f"{live_asgi.url}/predict/")
    page.set_input_files("#id_image", str(photo))
    page.click("#predict-form button[type=submit]")
    page.wait_for_selector("#predict-faces [data-face-label]")
    labels = page.locator("#predict-faces [data-face-label]")
    assert labels.count() == 2
    assert all(labels.nth(i).get_attribute("data-face-label") in CLASSES for i in range(2))
    assert page.locator("#predict-stage .box").count() == 2
    assert page.inner_text("#predict-message") == "2 faces found."

    page.goto(f"{live_asgi.url}/jobs/")
    page.set_input_files("#id_file", str(make_clip(tmp_path / "clip.avi")))
    page.fill("#id_every_k", "3")
    page.click("#job-form button[type=submit]")
    page.wait_for_url(f"{live_asgi.url}/jobs/*/")
    wait_until_finished(page, live_asgi)
    assert page.locator("#job-bar").evaluate("el => el.style.width") == "100%"
    page.wait_for_selector("#job-faces-summary .face-card")
    assert page.locator("#job-faces-summary .face-card").count() == 2
    assert page.locator("#job-faces-summary [data-face-label]").first.get_attribute("data-face-label") in CLASSES
    # A timeline per face, a curve per class.
    page.wait_for_function("Array.from(document.querySelectorAll('#job-faces-summary .timeline')).every((el) => el._fullLayout)")
    curves = page.eval_on_selector_all("#job-faces-summary .timeline", "els => els.map((el) => el.data.map((t) => t.name))")
    assert curves == [list(CLASSES)] * 2
    assert page.locator("#job-csv").is_visible() and page.locator("#job-json").is_visible()


@pytest.mark.browser
def test_the_job_page_reaches_the_end_when_the_socket_stays_silent(served_model, live_asgi, page, tmp_path):
    """Progress events are best effort: a socket that opens and never speaks must not leave the page stuck."""
    silent = []
    page.route_web_socket("**/ws/jobs/*/", lambda ws: silent.append(ws))  # accepted, never connected to the server
    signup(page, live_asgi.url, "quietuser")
    page.goto(f"{live_asgi.url}/jobs/")
    page.set_input_files("#id_file", str(make_clip(tmp_path / "clip.avi")))
    page.click("#job-form button[type=submit]")
    page.wait_for_url(f"{live_asgi.url}/jobs/*/")
    wait_until_finished(page, live_asgi)
    assert silent, "the page never opened its socket"
    assert page.inner_text("#job-status") == "succeeded"
    page.wait_for_selector("#job-faces-summary .face-card")


@pytest.mark.browser
def test_a_failed_job_offers_no_downloads_and_no_cancel(served_model, live_asgi, page, tmp_path):
    empty = tmp_path / "empty.zip"
    zipfile.ZipFile(empty, "w").close()
    signup(page, live_asgi.url, "faileduser")
    page.goto(f"{live_asgi.url}/jobs/")
    page.set_input_files("#id_file", str(empty))
    page.click("#job-form button[type=submit]")
    page.wait_for_url(f"{live_asgi.url}/jobs/*/")
    page.wait_for_function(FINISHED, timeout=120_000)
    assert page.get_attribute("#job", "data-status") == "failed"
    assert page.locator("#job-error").is_visible() and page.inner_text("#job-error")
    for control in ("#job-csv", "#job-json", "#job-cancel"):
        assert not page.locator(control).is_visible(), control


@pytest.mark.browser
def test_a_video_job_page_labels_its_share_bars_and_timeline_axes_exactly(live_asgi, page):
    """A face happy all along: its bar reads 100%, and the probability axis steps 0.0 0.2 ... 1.0."""
    from django.contrib.auth import get_user_model
    from django.db import connections

    from inference.models import InferenceJob
    from tests.training_web.chart_reading import (
        clipped_labels,
        figure,
        hover,
        overlapping_labels,
        shot,
        texts,
        ticks,
    )

    signup(page, live_asgi.url, "timelineuser")
    owner = get_user_model().objects.get(username="timelineuser")
    happy = {c: (0.9 if c == "happy" else round(0.1 / (len(CLASSES) - 1), 4)) for c in CLASSES}
    face = {"id": 1, "detections": 6, "first_s": 0.0, "last_s": 2.5, "dominant": "happy",
            "share": {c: float(c == "happy") for c in CLASSES}, "mean_probabilities": happy,
            "timeline": [{"t": 0.5 * i, "probabilities": happy} for i in range(6)]}
    job = InferenceJob.objects.create(
        owner=owner, kind="video", status="succeeded", progress=100, source="inference_uploads/clip.avi",
        source_name="clip.avi", total=6, processed=6, num_faces=6,
        summary={"kind": "video", "items": 6, "unreadable": 0, "detections": 6, "classes": list(CLASSES),
                 "share": {c: float(c == "happy") for c in CLASSES}, "faces": [face]})
    connections.close_all()
    page.goto(f"{live_asgi.url}/jobs/{job.pk}/")
    timeline = figure(page, "#job-faces-summary .timeline")
    figure(page, "#job-share")
    shot(page, "job-video")

    bars = dict(zip(ticks(page, "#job-share", "x"), texts(page, "#job-share .bartext")))
    assert bars["happy"] == "100%" and bars["sad"] == "0%"
    assert ticks(page, "#job-share", "y") == ["100%", "80%", "60%", "40%", "20%", "0%"]
    assert overlapping_labels(page, "#job-share .xtick text") == []
    assert ticks(page, ".timeline", "y") == ["1.0", "0.8", "0.6", "0.4", "0.2", "0.0"]
    seconds = [float(t) for t in ticks(page, ".timeline", "x")]  # evenly spaced, from the first frame on
    steps = {round(later - earlier, 6) for earlier, later in itertools.pairwise(seconds)}
    assert seconds[0] == 0 and seconds[-1] >= 2 and len(steps) == 1
    assert (timeline["layout"]["xaxis"]["title"]["text"], timeline["layout"]["yaxis"]["title"]["text"]) == (
        "seconds", "probability")
    assert "happy : 90%" in hover(page, ".timeline", curve=CLASSES.index("happy"), point=2)
    assert clipped_labels(page, ".timeline .xtick text, .timeline .ytick text") == []


@pytest.mark.browser
def test_cancel_on_a_job_asks_first(live_asgi, page):
    from django.contrib.auth import get_user_model
    from django.db import connections

    from inference.models import InferenceJob

    signup(page, live_asgi.url, "canceluser")
    owner = get_user_model().objects.get(username="canceluser")
    # A running row that no worker holds, so only the button can end it.
    job = InferenceJob.objects.create(owner=owner, kind="video", status="running", source="inference_uploads/x.avi",
                                      source_name="long.avi", total=1000, processed=10)
    connections.close_all()
    page.goto(f"{live_asgi.url}/jobs/{job.pk}/")
    questions = []
    page.once("dialog", lambda d: (questions.append(d.message), d.dismiss()))
    page.click("#job-cancel")
    page.wait_for_timeout(300)
    assert questions and f"Cancel job {job.pk}?" in questions[0]
    job.refresh_from_db()
    assert job.status == "running"

    page.once("dialog", lambda d: d.accept())
    page.click("#job-cancel")
    page.wait_for_selector("#job-status:text('cancelled')")
    job.refresh_from_db()
    assert job.status == "cancelled"
    assert not page.locator("#job-cancel").is_visible()
    connections.close_all()
