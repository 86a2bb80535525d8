"""A new user signs up, uploads a zip from /datasets/ in headless Chromium and sees the analysis."""
import pytest

from fercore.classes import CLASSES
from tests.conftest import signup
from tests.training_web.chart_reading import figure, texts

from .conftest import class_tree, make_zip

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def test_a_new_user_uploads_a_zip_and_sees_the_class_chart_and_samples(live_asgi, page, tmp_path):
    archive = make_zip(tmp_path / "my-faces.zip", class_tree(per_class=3, splits=("train", "test")))
    signup(page, live_asgi.url, username="dora")

    page.fill("#id_name", "my faces")
    page.set_input_files("#id_file", str(archive))
    page.click("#upload-button")
    page.wait_for_url(f"{live_asgi.url}/datasets/*/", timeout=60_000)

    assert page.text_content("#dataset-status") == "ready"
    assert page.text_content("#num-items") == "42"
    # Grouped bars: one series per split, a bar per class, each with the count it stands for.
    bars = figure(page, "#class-chart")["data"]
    assert [(split["name"], split["x"], split["y"]) for split in bars] == [
        (name, list(CLASSES), [3] * len(CLASSES)) for name in ("test", "train")]
    assert texts(page, "#class-chart .legendtext") == ["test", "train"]
    # The sample grid: every class has faces that actually loaded.
    for name in CLASSES:
        faces = page.locator(f'#sample-grid .sample-row[data-class="{name}"] img')
        assert faces.count() == 6
    page.wait_for_function(
        "Array.from(document.querySelectorAll('#sample-grid img')).every(img => img.complete && img.naturalWidth === 48)"
    )
    page.wait_for_function(
        "Array.from(document.querySelectorAll('#mean-faces img')).every(img => img.complete && img.naturalWidth === 48)"
    )

    page.goto(f"{live_asgi.url}/datasets/")
    assert page.locator("tr[data-status=ready] a", has_text="my faces").count() == 1


def test_a_refused_upload_shows_the_reason_on_the_page(live_asgi, page, tmp_path):
    archive = make_zip(tmp_path / "odd.zip", class_tree(per_class=1, classes=("contempt",)))
    signup(page, live_asgi.url, username="eve")
    page.set_input_files("#id_file", str(archive))
    page.click("#upload-button")
    error = page.locator("#upload-error")
    error.wait_for(state="visible")
    assert error.inner_text().startswith("Unknown class folders: contempt. Valid class names: angry, disgust")
