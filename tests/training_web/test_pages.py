"""The training pages: the new-run form on the server, and the whole flow in headless Chromium."""
import re
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from inference.models import ActiveModelChoice, ModelVersion
from tests.conftest import signup
from tests.training_web.chart_reading import figure, series
from tests.training_web.conftest import make_ready_dataset
from training_jobs.models import TrainingRun


@pytest.mark.django_db
class TestNewRunForm:
    def test_it_offers_every_architecture_with_its_parameter_count(self, client, alice, ready_dataset):
        client.force_login(alice)
        page = client.get("/runs/new/").content.decode()
        assert "adapted_residual · 9,766,391 parameters" in page
        for name in ("basic_cnn", "light_residual", "resnet34", "resnet50", "hybrid_resnet34_50"):
            assert f'value="{name}"' in page
        for optimizer in ("sgd", "adam", "adamw", "rmsprop", "nadam"):
            assert f'value="{optimizer}"' in page
        assert ready_dataset.name in page
        # A training worker without a GPU: the form opens on the quick preset's recipe.
        assert re.search(r'name="batch_size"[^>]*value="128"', page)
        assert '<option value="adamw" data-description="" selected>' in page

    def test_it_shows_what_is_wrong_next_to_the_field(self, client, alice, ready_dataset):
        client.force_login(alice)
        response = client.post("/runs/new/", {"dataset": ready_dataset.pk, "architecture": "light_residual",
                                              "optimizer": "nadam", "epochs": "0", "learning_rate": "fast"})
        assert response.status_code == 200
        page = response.content.decode()
        assert "between 1 and 1000" in page and "must be a number" in page
        assert not TrainingRun.objects.exists()

    def test_a_valid_form_starts_a_run_and_shows_it(self, client, alice, ready_dataset):
        client.force_login(alice)
        response = client.post("/runs/new/", {
            "dataset": ready_dataset.pk, "architecture": "light_residual", "optimizer": "sgd", "epochs": "3",
            "batch_size": "16", "learning_rate": "0.01", "_booleans": ["hflip", "class_weighting"], "hflip": "on",
        })
        run = TrainingRun.objects.get()
        assert response.status_code == 302 and response.url == f"/runs/{run.pk}/"
        assert run.config["optimizer"] == "sgd" and run.config["epochs"] == 3
        assert run.config["hflip"] is True and run.config["class_weighting"] is False
        listing = client.get("/runs/").content.decode()
        assert f'data-run="{run.pk}"' in listing

    def test_the_form_offers_the_shipped_model_as_a_teacher(self, client, alice, ready_dataset, settings, tmp_path):
        shipped = tmp_path / "shipped.onnx"
        shipped.write_bytes(b"the shipped model")
        settings.FERWEB_DEFAULT_MODEL = shipped
        client.force_login(alice)
        page = client.get("/runs/new/").content.decode()
        assert '<option value="default" >The default model FERWeb ships with</option>' in page
        response = client.post("/runs/new/", {"dataset": ready_dataset.pk, "architecture": "light_residual",
                                              "optimizer": "sgd", "epochs": "2", "teacher_model": "default"})
        run = TrainingRun.objects.get()
        assert response.status_code == 302
        assert open(run.config["teacher_checkpoint"], "rb").read() == b"the shipped model"

    def test_compare_and_models_pages_render(self, client, alice, ready_dataset):
        client.force_login(alice)
        ids = []
        for optimizer in ("sgd", "adam"):
            client.post("/runs/new/", {"dataset": ready_dataset.pk, "architecture": "light_residual",
                                       "optimizer": optimizer, "epochs": "2"})
        ids = [str(r.pk) for r in TrainingRun.objects.order_by("pk")]
        page = client.get(f"/runs/compare/?ids={','.join(ids)}").content.decode()
        assert "compare-confusion" in page and page.count('"optimizer"') >= 2
        assert client.get("/models/").status_code == 200


def shipped_row(page_html: str) -> str:
    return re.search(r'<tr data-model="default".*?</tr>', page_html, re.S).group(0)


@pytest.mark.django_db
class TestModelsPage:
    def test_the_shipped_model_has_a_row_with_its_card_numbers(self, client, alice):
        import json

        from django.conf import settings

        card = json.loads(Path(settings.FERWEB_DEFAULT_MODEL).with_suffix(".json").read_text())
        client.force_login(alice)
        row = shipped_row(client.get("/models/").content.decode())
        assert card["version"] in row and card["architecture"] in row and f"{card['parameters']:,}" in row
        assert f"{100 * card['metrics_summary']['accuracy']:.1f}%" in row  # accuracies as percents, as on every page
        for name in ("macro_f1", "macro_auc"):
            assert f"{card['metrics_summary'][name]:.3f}" in row
        assert "data-active" in row and "site default" in row
        assert "Make active" not in row and 'data-site-default="true"' not in row  # alice is no staff

    def test_a_user_may_pick_the_shipped_model_over_a_site_default_version(self, client, alice, carol):
        site = ModelVersion.objects.create(owner=carol, onnx_file="models/site.onnx", architecture="light_residual",
                                           version="site-v1", is_site_default=True)
        client.force_login(alice)
        row = shipped_row(client.get("/models/").content.decode())
        assert "data-active" not in row and 'class="activate" data-model="default">Make active' in row
        client.force_login(carol)
        row = shipped_row(client.get("/models/").content.decode())
        assert 'class="activate" data-model="default">Make active' in row  # its dialog offers "For everyone"
        assert 'data-staff="true"' in client.get("/models/").content.decode()
        assert site.is_site_default


@pytest.mark.browser
def test_a_user_makes_a_version_active_then_returns_to_the_shipped_model(served_model, live_asgi, page, tmp_path):
    try:
        return_to_the_shipped_model(served_model, live_asgi, page, tmp_path)
    finally:
        connections.close_all()


def return_to_the_shipped_model(served_model, live_asgi, page, tmp_path):
    """1. the shipped model serves; 2. a version is made active and serves; 3. "Make active" on the
    shipped row brings the shipped model back, for the page and for predictions."""
    import json

    from django.core.files.base import ContentFile

    from inference.synthetic import contract_model, draw_face, jpeg, scene

    served_model.with_suffix(".json").write_text(json.dumps({
        "version": "test-default", "architecture": "synthetic-mlp", "parameters": 1234,
        "metrics_summary": {"accuracy": 0.612, "macro_f1": 0.555, "macro_auc": 0.901},
    }))
    signup(page, live_asgi.url, "gina")
    gina = get_user_model().objects.get(username="gina")
    other = contract_model(tmp_path / "v2.onnx", seed=42, version="v2")
    version = ModelVersion(owner=gina, architecture="synthetic-mlp", version="v2", metrics={"accuracy": 0.5})
    version.onnx_file.save("v2.onnx", ContentFile(other.read_bytes()))
    photo = tmp_path / "two.jpg"
    photo.write_bytes(jpeg(scene([draw_face(170, seed=1), draw_face(150, smile=1.0, seed=2)], seed=7)[0]))
    shipped = 'tr[data-model="default"]'
    mine = f'tr[data-model="{version.pk}"]'

    page.goto(f"{live_asgi.url}/models/")
    assert page.locator(f"{shipped} [data-active]").count() == 1
    assert "61.2%" in page.inner_text(shipped) and "1,234" in page.inner_text(shipped)
    assert page.inner_text("#active-model") == "test-default"
    assert predicted_model(page, live_asgi, photo) == "test-default"  # the card's name for it

    page.goto(f"{live_asgi.url}/models/")
    page.click(f"{mine} button.activate")
    page.click("#activate-me")  # the dialog asks first
    page.wait_for_selector(f"{mine} [data-active]")
    assert page.locator(f"{shipped} [data-active]").count() == 0
    assert page.inner_text("#active-model") == "v2"
    assert predicted_model(page, live_asgi, photo) == "v2"

    page.goto(f"{live_asgi.url}/models/")
    page.click(f"{shipped} button.activate")
    page.click("#activate-me")
    page.wait_for_selector(f"{shipped} [data-active]")
    assert page.locator(f"{mine} [data-active]").count() == 0
    assert page.locator(f"{mine} button.activate").count() == 1
    assert page.inner_text("#active-model") == "test-default"
    assert ActiveModelChoice.objects.get(user=gina).model_version is None  # chosen, not merely unset
    assert predicted_model(page, live_asgi, photo) == "test-default"  # the card's name for it


def predicted_model(page, live_asgi, photo) -> str:
    """The model version the predict page reports for one photo."""
    page.goto(f"{live_asgi.url}/predict/")
    page.set_input_files("#id_image", str(photo))
    page.click("#predict-form button[type=submit]")
    page.wait_for_selector("#predict-faces [data-face-label]")
    return page.inner_text("#predict-model")


@pytest.mark.browser
def test_a_run_launched_from_the_form_streams_live_and_ends_with_its_evaluation(live_asgi, page):
    try:
        launch_and_watch_a_run(live_asgi, page)
    finally:
        # The queries above ran in Playwright's context, whose connection the test teardown never sees.
        connections.close_all()


def launch_and_watch_a_run(live_asgi, page):
    signup(page, live_asgi.url, "dora")
    dora = get_user_model().objects.get(username="dora")
    dataset = make_ready_dataset(dora, per_class=80, name="dora's drawn faces")

    page.goto(f"{live_asgi.url}/runs/new/")
    page.select_option("#id_dataset", str(dataset.pk))
    page.select_option("#id_architecture", "light_residual")
    assert "Mutaliyev" in page.inner_text("#architecture-description")
    page.fill("#id_epochs", "10")
    page.fill("#id_batch_size", "16")
    page.click("#advanced-settings > summary")
    page.fill("#id_num_threads", "1")
    page.fill("#id_seed", "1")
    page.uncheck("#id_temperature_scaling")  # its floor on drawn faces scales logits 20x
    page.click("#start-run")
    page.wait_for_url(re.compile(r".*/runs/\d+/$"))
    page.evaluate("window.__samePage = true")

    seen, texts = [], set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        seen.append(float(page.get_attribute("#run-progress", "aria-valuenow")))
        texts.add(page.inner_text("#run-progress-text"))
        if page.inner_text("#run-status") in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.1)
    assert page.inner_text("#run-status") == "succeeded", page.inner_text("#run-error")
    moving = sorted({v for v in seen if 0 < v < 100})
    assert len(moving) >= 3, f"the bar did not move live: {sorted(set(seen))}"
    assert seen == sorted(seen)
    assert any("left" in t and "images/s" in t for t in texts), texts
    assert page.evaluate("window.__samePage") is True, "the page reloaded"

    # The evaluation appears without a reload: curves, confusion matrices, ROC, occlusion, download.
    page.wait_for_selector("#evaluation:not([hidden])")
    assert [name for name, _, _ in series(figure(page, "#loss-chart"))] == ["training loss", "validation loss"]
    for matrix in ("#confusion-counts", "#confusion-normalized"):
        z = figure(page, matrix)["data"][0]["z"]
        assert len(z) == 7 and all(len(row) == 7 for row in z), matrix
    assert len(figure(page, "#roc-chart")["data"]) >= 3
    assert "AUC" in page.inner_text("#roc-chart")
    assert page.locator("#per-class-table tr[data-class=happy]").count() == 1
    assert page.locator("#occlusion figure").count() >= 3
    assert page.get_attribute("#download-onnx", "href").endswith("/onnx/")
    page.click("#make-active")
    page.click("#activate-me")  # the dialog asks first
    page.wait_for_function("document.querySelector('#make-active').textContent === 'Active'")
    run = TrainingRun.objects.get(owner=dora)
    assert run.status == "succeeded"
    assert dora.active_model_choice.model_version.run_id == run.pk


@pytest.mark.browser
def test_the_list_updates_live_and_the_cancel_button_stops_the_run(live_asgi, page):
    try:
        signup(page, live_asgi.url, "erin")
        erin = get_user_model().objects.get(username="erin")
        dataset = make_ready_dataset(erin, per_class=40)
        from training_jobs.services import run_create

        live_asgi.worker.stop()  # so that the page surely opens on a queued run
        run = run_create(user=erin, dataset=dataset, config={
            "architecture": "light_residual", "epochs": 200, "batch_size": 4, "num_threads": 1})
        page.goto(f"{live_asgi.url}/runs/")
        badge = page.locator(f'tr[data-run="{run.pk}"] [data-status]')
        assert badge.inner_text() == "queued"
        live_asgi.worker.start()
        badge.filter(has_text="running").wait_for(timeout=60_000)

        page.goto(f"{live_asgi.url}/runs/{run.pk}/")
        page.wait_for_function("Number(document.querySelector('#run-progress').getAttribute('aria-valuenow')) > 0")
        page.once("dialog", lambda dialog: dialog.accept())  # "Cancel run N?"
        page.click("#cancel-run")
        page.locator("#run-status", has_text="cancelled").wait_for(timeout=15_000)
        assert page.locator("#cancel-run").is_hidden()
        run.refresh_from_db()
        assert run.status == "cancelled" and len(run.history) < 200
    finally:
        connections.close_all()


@pytest.mark.browser
def test_the_run_page_shows_the_end_of_a_run_whose_socket_stays_silent(live_asgi, page):
    """Live events are best effort: with a socket that never speaks, the page still reads the run's end."""
    try:
        silent = []
        page.route_web_socket("**/ws/runs/*/", lambda ws: silent.append(ws))  # accepted, never connected
        signup(page, live_asgi.url, "fern")
        fern = get_user_model().objects.get(username="fern")
        dataset = make_ready_dataset(fern, per_class=20)
        from training_jobs.services import run_create

        run = run_create(user=fern, dataset=dataset, config={
            "architecture": "light_residual", "epochs": 2, "batch_size": 16, "num_threads": 1,
            "temperature_scaling": False})
        page.goto(f"{live_asgi.url}/runs/{run.pk}/")
        page.locator("#run-status", has_text="succeeded").wait_for(timeout=120_000)
        assert silent, "the page never opened its socket"
        page.wait_for_selector("#evaluation:not([hidden])")
    finally:
        connections.close_all()
