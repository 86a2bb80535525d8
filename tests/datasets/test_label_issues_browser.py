"""The label-error finder's review screen in headless Chromium: start a scan, wait for it, then review
the flagged faces with the keyboard (2 relabels, Enter accepts, X excludes, Z undoes)."""
import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from fercore.classes import CLASSES
from ferweb.datasets.models import DatasetItem, LabelIssueScan
from tests.conftest import signup
from tests.datasets.label_issue_faces import band_model, flipped_dataset

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.fixture
def band_default(tmp_path, settings, monkeypatch):
    """The band model as the shipped default, for the server and worker processes too (set before they start)."""
    path = band_model(tmp_path / "models" / "default.onnx")
    monkeypatch.setenv("FERWEB_DEFAULT_MODEL", str(path))
    settings.FERWEB_DEFAULT_MODEL = path
    return path


def item_state(item_id):
    item = DatasetItem.objects.get(pk=item_id)
    return CLASSES[item.label], item.excluded


def test_reviewing_flagged_faces_with_the_keyboard(band_default, live_asgi, page):
    signup(page, live_asgi.url, "dora")
    dora = get_user_model().objects.get(username="dora")
    dataset, truth, flips, ids = flipped_dataset(dora)
    connections.close_all()

    page.goto(f"{live_asgi.url}/datasets/{dataset.pk}/")
    page.click("#find-label-errors")
    page.wait_for_url(f"{live_asgi.url}/datasets/{dataset.pk}/label-issues/")
    page.select_option("#finder-model", "default")
    page.click("#finder-run")
    page.wait_for_selector("#finder-review", state="visible", timeout=60_000)
    assert page.inner_text("#finder-summary").startswith(f"{len(flips)} of {len(truth)} faces flagged")
    assert page.inner_text("#finder-done") == "0" and page.inner_text("#finder-remaining") == str(len(flips))

    def current_item():
        src = page.get_attribute("#finder-face", "src")
        index = int(src.rsplit("/", 1)[1].split(".")[0])
        return ids[index], index

    def wait_done(n):
        page.wait_for_function(f"document.getElementById('finder-done').textContent === '{n}'")

    first, first_index = current_item()
    assert page.inner_text("#finder-given") == CLASSES[DatasetItem.objects.get(pk=first).label]
    page.keyboard.press("2")
    wait_done(1)
    assert item_state(first) == ("disgust", False)

    second, second_index = current_item()
    suggested = page.inner_text("#finder-suggested")
    assert suggested == CLASSES[truth[second_index]]
    page.keyboard.press("Enter")
    wait_done(2)
    assert item_state(second) == (suggested, False)

    third, _ = current_item()
    page.keyboard.press("x")
    wait_done(3)
    assert item_state(third)[1] is True
    assert page.inner_text("#finder-remaining") == str(len(flips) - 3)

    page.keyboard.press("z")
    wait_done(2)
    assert item_state(third)[1] is False
    assert current_item()[0] == third
    page.wait_for_function("document.getElementById('finder-state').dataset.excluded === 'false'")

    page.keyboard.press("s")
    wait_done(3)
    assert item_state(third)[1] is False  # a skip changes nothing

    # Keys pressed faster than the saves wait their turn: none is lost, each acts on its own face.
    ranking = page.evaluate(f"fetch('/api/datasets/{dataset.pk}/label-issues/').then((r) => r.json())")["issues"]
    for _ in range(3):
        page.keyboard.press("Enter")
    wait_done(6)
    for issue in ranking[3:6]:
        assert item_state(issue["item"]) == (issue["suggested"], False)
    connections.close_all()


def test_cross_validation_is_estimated_before_it_starts_then_scores_every_face(live_asgi, page):
    signup(page, live_asgi.url, "dora")
    dora = get_user_model().objects.get(username="dora")
    dataset, truth, flips, ids = flipped_dataset(dora)
    connections.close_all()

    page.goto(f"{live_asgi.url}/datasets/{dataset.pk}/label-issues/")
    assert page.is_hidden("#finder-folds-field") and page.is_hidden("#finder-estimate")
    page.select_option("#finder-model", "cross-validation")
    page.fill("#finder-folds", "2")
    page.dispatch_event("#finder-folds", "change")
    page.wait_for_function("document.getElementById('finder-estimate-time').textContent.includes('2-fold')")
    estimate = page.inner_text("#finder-estimate-time")
    assert estimate.startswith("about ") and "on the training worker (2-fold cross-validation (quick preset))" in estimate

    # While the training worker is busy, the page says with what.
    live_asgi.worker.stop()
    from tests.training_web.conftest import busy_run

    busy = busy_run(dora)
    page.click("#finder-run")
    page.wait_for_function("document.getElementById('finder-phase').textContent.includes('behind')")
    assert page.inner_text("#finder-phase").startswith(f"Waiting for the training worker · behind run #{busy.pk} (about 1m")
    busy.delete()
    connections.close_all()
    live_asgi.worker.start()
    # Two folds of the quick preset on 140 faces, on the test worker's training queue.
    page.wait_for_selector("#finder-review", state="visible", timeout=240_000)
    assert f"of {len(truth)} faces flagged" in page.inner_text("#finder-summary")
    scan = LabelIssueScan.objects.get(dataset=dataset)
    assert scan.folds == 2 and scan.model_choice == "cross-validation" and scan.processed == len(truth)
    assert scan.dataset_version is not None and scan.dataset_version.sealed
    connections.close_all()
