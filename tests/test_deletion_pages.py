"""Tidying up in the browser: delete asks first (what goes, the space it frees) and removes; a run's
notes and tags stay after a reload; an upload shows its phases and its row at once."""
import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from ferweb.datasets.models import Dataset
from tests.conftest import signup
from tests.datasets.test_names import labeling_set_with_confirmed_faces
from tests.datasets.test_worker import slow_zip
from tests.training_web.conftest import make_ready_dataset
from tests.training_web.test_charts import finished_run, occlusion_item
from training_jobs.models import TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.worker]


@pytest.fixture
def dora(live_asgi, page):
    signup(page, live_asgi.url, "dora")
    yield get_user_model().objects.get(username="dora")
    connections.close_all()  # the ORM calls of the test ran inside Playwright's loop


def test_deleting_a_dataset_asks_what_goes_cancel_keeps_it_and_delete_removes_it(live_asgi, page, dora):
    dataset = make_ready_dataset(dora, per_class=3, name="old faces")
    page.goto(f"{live_asgi.url}/datasets/{dataset.pk}/")

    page.click("#delete-dataset")
    dialog = page.locator("#delete-dialog")
    dialog.wait_for(state="visible")
    page.wait_for_function("document.getElementById('delete-what').textContent.includes('will be deleted')")
    assert page.inner_text("#delete-title") == f"Delete dataset #{dataset.pk} “old faces”?"
    assert page.inner_text("#delete-what") == (
        f'Dataset #{dataset.pk} "old faces" will be deleted with its {dataset.num_items} faces and their labels.')
    assert re.fullmatch(r"Frees \d+(\.\d)? KB of your storage\.", page.inner_text("#delete-frees"))
    page.click("#delete-cancel")
    dialog.wait_for(state="detached")
    assert Dataset.objects.filter(pk=dataset.pk).exists()
    assert page.url == f"{live_asgi.url}/datasets/{dataset.pk}/"

    page.click("#delete-dataset")
    page.wait_for_selector("#delete-confirm:enabled")
    page.click("#delete-confirm")
    page.wait_for_url(f"{live_asgi.url}/datasets/")
    assert not Dataset.objects.filter(pk=dataset.pk).exists()
    assert page.locator(f"tr[data-dataset-id='{dataset.pk}']").count() == 0
    assert page.locator("#no-datasets").is_visible()


def test_a_list_row_is_deleted_in_place(live_asgi, page, dora):
    keep, drop = (make_ready_dataset(dora, per_class=2, name=name) for name in ("keep me", "drop me"))
    page.goto(f"{live_asgi.url}/datasets/")
    page.click(f"tr[data-dataset-id='{drop.pk}'] button.delete-link")
    page.wait_for_selector("#delete-confirm:enabled")
    page.click("#delete-confirm")
    page.locator(f"tr[data-dataset-id='{drop.pk}']").wait_for(state="detached")
    assert page.locator(f"tr[data-dataset-id='{keep.pk}']").is_visible()
    assert list(Dataset.objects.values_list("name", flat=True)) == ["keep me"]


def test_deleting_a_run_from_its_page(live_asgi, page, dora):
    run = finished_run(dora, make_ready_dataset(dora, per_class=2), [2.0, 1.6], [occlusion_item("happy", 0.01)])
    page.goto(f"{live_asgi.url}/runs/{run.pk}/")
    page.click("#delete-run")
    page.wait_for_selector("#delete-confirm:enabled")
    assert page.inner_text("#delete-what").startswith(f'Run #{run.pk} "2 epoch run" will be deleted with its checkpoints')
    page.click("#delete-confirm")
    page.wait_for_url(f"{live_asgi.url}/runs/")
    assert page.locator(f"tr[data-run='{run.pk}']").count() == 0
    assert not TrainingRun.objects.filter(pk=run.pk).exists()


def test_a_running_run_says_to_cancel_it_first(live_asgi, page, dora):
    run = finished_run(dora, make_ready_dataset(dora, per_class=2), [2.0], [], status="running")
    page.goto(f"{live_asgi.url}/runs/{run.pk}/")
    page.click("#delete-run")
    page.wait_for_selector("#delete-confirm:enabled")
    assert page.inner_text("#delete-what") == f"Run {run.pk} is running: cancel it first, then delete it."
    page.click("#delete-confirm")
    page.locator("#delete-error").wait_for(state="visible")
    assert "cancel it first" in page.inner_text("#delete-error")
    assert TrainingRun.objects.filter(pk=run.pk).exists()


def test_notes_and_tags_are_saved_and_shown_after_a_reload(live_asgi, page, dora):
    run = finished_run(dora, make_ready_dataset(dora, per_class=2), [2.0], [occlusion_item("happy", 0.01)])
    page.goto(f"{live_asgi.url}/runs/{run.pk}/")
    page.fill("#id_run_notes", "Overfits after epoch 3; try more augmentation.")
    page.click("#save-notes")
    page.wait_for_function("document.getElementById('notes-status').textContent === 'Saved'")
    page.fill("#id_new_tag", "baseline")
    page.press("#id_new_tag", "Enter")
    page.wait_for_selector("#run-tags .tag[data-tag='baseline']")
    page.fill("#id_new_tag", "x" * 32 + "y")  # the field stops at 32 characters
    assert page.input_value("#id_new_tag") == "x" * 32

    page.reload()
    assert page.input_value("#id_run_notes") == "Overfits after epoch 3; try more augmentation."
    assert page.eval_on_selector_all("#run-tags .tag", "tags => tags.map((t) => t.dataset.tag)") == ["baseline"]
    assert page.inner_text("#run-tags .tag a") == "baseline"
    page.click("#run-tags .tag a")
    page.wait_for_url(f"{live_asgi.url}/runs/?tag=baseline")
    assert page.locator(f"tr[data-run='{run.pk}'] .tag").inner_text() == "baseline"

    page.goto(f"{live_asgi.url}/runs/{run.pk}/")
    page.click("#run-tags .tag[data-tag='baseline'] button")
    page.wait_for_selector("#run-tags .tag", state="detached")
    run.refresh_from_db()
    assert run.tags == [] and run.notes == "Overfits after epoch 3; try more augmentation."


def test_an_upload_shows_checking_and_importing_and_its_row_at_once(live_asgi, page, dora, tmp_path):
    archive = slow_zip(tmp_path / "photos.zip", photos=40)
    shown = []
    page.expose_function("recordPhase", lambda text: shown.append(text))
    page.evaluate("""() => {
      const phase = document.getElementById('upload-phase');
      new MutationObserver(() => window.recordPhase(phase.textContent))
        .observe(phase, { childList: true, characterData: true, subtree: true });
    }""")
    assert page.locator("#no-datasets").is_visible()
    page.fill("#id_name", "photos")
    page.set_input_files("#id_file", str(archive))
    page.click("#upload-button")

    row = page.locator("#dataset-table tr[data-dataset-id]")
    row.wait_for(timeout=60_000)
    assert row.get_attribute("data-status") == "importing"  # listed while its faces are still being read
    assert "photos" in row.inner_text() and not page.locator("#no-datasets").is_visible()
    page.wait_for_url(re.compile(r".*/datasets/\d+/$"), timeout=120_000)
    assert page.inner_text("#dataset-status") == "ready"
    assert "Checking archive" in shown and "Importing" in shown, shown
    assert shown.index("Checking archive") < shown.index("Importing")


def test_create_dataset_twice_makes_one_dataset_and_keeps_the_form(live_asgi, page, dora):
    labeling_set = labeling_set_with_confirmed_faces(dora)
    page.goto(f"{live_asgi.url}/labeling/{labeling_set.pk}/")
    page.fill("#id_dataset_name", "Holiday faces")
    page.fill("#id_test_percent", "20")
    page.click("#dataset-button")
    page.wait_for_selector("#new-dataset-link")
    made = Dataset.objects.get(name="Holiday faces")
    assert page.inner_text("#dataset-created") == f"Created dataset #{made.pk} “Holiday faces” with 3 faces."
    assert page.inner_text(f"#dataset-links li[data-dataset-id='{made.pk}']").startswith(f"#{made.pk} Holiday faces")

    page.click("#dataset-button")
    page.locator("#dataset-error").wait_for(state="visible")
    assert page.inner_text("#dataset-error") == (
        f'You already have a dataset named "Holiday faces" (#{made.pk}): choose another name.')
    assert page.get_attribute("#id_dataset_name", "aria-invalid") == "true"
    assert page.input_value("#id_dataset_name") == "Holiday faces" and page.input_value("#id_test_percent") == "20"
    assert Dataset.objects.filter(owner=dora).count() == 1
    assert page.locator("#dataset-links li").count() == 1
