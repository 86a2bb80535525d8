"""The chain of versions on the dataset page in headless Chromium: the versions newest first with the runs
trained on each, and the faces that changed between two of them."""
import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from fercore.classes import CLASSES
from ferweb.datasets import services, versions
from ferweb.datasets.models import DatasetItem
from tests.conftest import signup
from tests.datasets.label_issue_faces import flipped_dataset
from tests.training_web.chart_reading import shot

pytestmark = [pytest.mark.browser, pytest.mark.worker]


def relabel(dataset, item, user, source):
    label = (item.label + 1) % len(CLASSES)
    services.dataset_items_update(items=DatasetItem.objects.filter(pk=item.pk), label=label, user=user, source=source)
    return CLASSES[item.label], CLASSES[label]


def test_the_dataset_page_shows_the_chain_its_runs_and_a_diff(live_asgi, page):
    from training_jobs.models import TrainingRun

    signup(page, live_asgi.url, "dora")
    dora = get_user_model().objects.get(username="dora")
    dataset = flipped_dataset(dora)[0]
    first, second, third = DatasetItem.objects.filter(dataset=dataset).order_by("index")[:3]
    relabel(dataset, first, dora, "review")
    before, after = relabel(dataset, second, dora, "review")
    trained = versions.version_seal(dataset)  # as run_create does
    run = TrainingRun.objects.create(owner=dora, dataset=dataset, dataset_version=trained, name="on v2",
                                     architecture="fast_resnet", optimizer="adamw", status="succeeded",
                                     metrics={"accuracy": 0.9})
    services.dataset_items_update(items=DatasetItem.objects.filter(pk=third.pk), excluded=True, user=dora,
                                  source="confusion")
    connections.close_all()

    page.goto(f"{live_asgi.url}/datasets/{dataset.pk}/")
    chain = page.locator("#version-chain .version")
    assert chain.count() == 3
    assert [chain.nth(i).get_attribute("data-version") for i in range(3)] == ["3", "2", "1"]
    assert "1 excluded" in chain.nth(0).inner_text() and "newest" in chain.nth(0).inner_text()
    assert "2 relabeled" in chain.nth(1).inner_text()
    run_chip = chain.nth(1).locator(".run-chip")
    assert run_chip.inner_text() == f"run {run.pk} · 90.0%"
    assert "no runs trained on it" in chain.nth(0).inner_text()
    assert "imported 140 faces" in chain.nth(2).inner_text()

    page.select_option("#diff-from", "1")
    page.select_option("#diff-to", "3")
    page.click("#version-diff-form button[type=submit]")
    page.wait_for_selector("#version-diff-summary")
    assert page.inner_text("#version-diff-summary").startswith("v1 → v3: 2 relabeled")
    assert "1 excluded" in page.inner_text("#version-diff-summary")
    faces = page.locator("#version-diff .diff-face")
    assert faces.count() == 3
    second_face = page.locator(f'#version-diff .diff-face[data-item="{second.pk}"]')
    assert second_face.inner_text() == f"{before} → {after}"
    assert page.locator(f'#version-diff .diff-face[data-item="{third.pk}"]').get_attribute("data-change") == "excluded"

    page.locator("#versions").scroll_into_view_if_needed()
    shot(page, "dataset-versions")

    export = page.request.get(f"{live_asgi.url}/api/datasets/{dataset.pk}/export.csv?version=2")
    assert export.status == 200 and "-v2.csv" in export.headers["content-disposition"]
    run_chip.click()
    page.wait_for_url(f"{live_asgi.url}/runs/{run.pk}/")
