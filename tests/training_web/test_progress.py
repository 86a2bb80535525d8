"""A running run's phases and ETA, and the throughput measurements they rest on, with real workers:
the worker's own measurement at start, a run's events end to end, and what the run page shows."""
import time
from types import SimpleNamespace

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.db import connections

from ferweb.asgi import application
from tests.conftest import signup
from tests.training_web.conftest import make_ready_dataset
from tests.training_web.test_training import run_status, wait_for, ws_headers
from training_jobs import estimates, tasks
from training_jobs.ml import throughput
from training_jobs.models import Throughput, TrainingRun

FINISHED = ("succeeded", "failed", "cancelled")
ORDER = ["preparing_data", "training", "evaluating", "occlusion_maps", "exporting", ""]
# Many small batches, so that the first epoch lasts a few seconds; every core, so that the run may
# refresh the throughput of its combination.
SHORT = {"architecture": "fast_resnet", "epochs": 2, "batch_size": 2, "num_threads": 0, "seed": 1,
         "occlusion_per_class": 1, "temperature_scaling": False}


def a_worker(*queues):
    """What Celery hands a worker_ready receiver: the worker, with the queues it consumes."""
    return SimpleNamespace(app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(
        consume_from={name: None for name in queues}))))


@pytest.mark.django_db(transaction=True)
def test_a_training_worker_measures_the_quick_preset_once_per_device(settings, monkeypatch):
    settings.FERWEB_MEASURE_THROUGHPUT = True
    monkeypatch.setattr(throughput, "BUDGET_S", 0.5)  # seconds: enough for a number, not for a good one
    tasks.measure_at_worker_start(sender=a_worker("inference"))
    assert not Throughput.objects.exists(), "an inference worker does not train, so it measures nothing"

    tasks.measure_at_worker_start(sender=a_worker("training"))
    row = Throughput.objects.get()
    quick = estimates.quick_combination()
    assert (row.architecture, row.batch_size, row.bf16) == (quick["architecture"], quick["batch_size"], quick["bf16"])
    assert row.source == "benchmark" and row.device.startswith("cpu: ") and row.device.endswith(" threads")
    assert row.train_images_per_s > 0 and row.eval_images_per_s > row.train_images_per_s

    tasks.measure_at_worker_start(sender=a_worker("training"))  # a restart on the same device
    assert Throughput.objects.get().measured_at == row.measured_at, "kept, not measured again"

    # What an estimate asks for: another combination, measured by the task on the training queue.
    tasks.measure_throughput("light_residual", 8, False)
    asked = Throughput.objects.get(architecture="light_residual")
    assert (asked.batch_size, asked.device, asked.source) == (8, row.device, "benchmark")


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_run_goes_through_its_phases_with_an_eta_from_its_first_batches(celery_worker, alice, alice_api):
    dataset = make_ready_dataset(alice, per_class=60)
    headers, events = ws_headers(alice), []

    async def watch(run_id):
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=headers)
        connected, _ = await communicator.connect()
        assert connected
        while True:
            event = await communicator.receive_json_from(timeout=120)
            events.append(event)
            if event.get("status") in FINISHED:
                break
        await communicator.disconnect()

    response = alice_api.post("/api/runs/", {"dataset": dataset.pk, **SHORT}, format="json")
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    async_to_sync(watch)(run_id)
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == "succeeded", run.human_readable_error
    assert run.estimated_seconds > 0

    # Every phase, in order, each named once.
    phases = [e["progress"]["phase"] for e in events]
    seen = [p for i, p in enumerate(phases) if p != "queued" and (i == 0 or p != phases[i - 1])]
    assert seen == ORDER, phases
    assert set(run.metrics["phase_seconds"]) == set(ORDER[:-1])

    # Seconds left from the first batches of the first epoch on, covering what comes after training.
    first_epoch = [e for e in events if e["type"] == "run.batch" and e["epoch"] == 1 and e["batch"] < e["batches"]]
    assert first_epoch, "the first epoch reported batches"
    assert all(e["progress"]["eta_seconds"] > 0 for e in first_epoch)
    late = [e for e in events if e["progress"]["phase"] in ("evaluating", "occlusion_maps", "exporting")]
    assert late and all(e["progress"]["eta_seconds"] >= 1 for e in late), "never 0 while the evaluation runs"
    percents = [e["progress"]["percent"] for e in events if e.get("status") not in FINISHED]
    assert percents == sorted(percents) and max(percents) < 100
    body = alice_api.get(f"/api/runs/{run_id}/").json()
    assert body["progress"] == {"percent": 100.0, "phase": "", "eta_seconds": None}

    # The run's epochs measured its combination on this machine.
    row = Throughput.objects.get(architecture="fast_resnet", batch_size=2)
    assert row.source == f"run {run_id}" and row.device.startswith("cpu: ") and row.train_images_per_s > 0


def running_cv_scan(owner, dataset, estimated_seconds: float = 1200, started_ago_s: float = 60):
    """A cross-validation scan as the training worker holds it (row only: no worker runs it)."""
    from datetime import timedelta

    from django.utils import timezone

    from ferweb.datasets.models import LabelIssueScan

    return LabelIssueScan.objects.create(
        owner=owner, dataset=dataset, model_choice="cross-validation", folds=5, status="running",
        estimated_seconds=estimated_seconds, started_at=timezone.now() - timedelta(seconds=started_ago_s),
        phase="fold_1_of_5",
    )


def test_a_queued_run_says_what_the_training_worker_is_busy_with(alice, alice_api, bob, bob_api):
    from training_jobs.services import run_create

    dataset = make_ready_dataset(alice, per_class=4)
    mine = run_create(user=alice, dataset=dataset, config=SHORT, queue=False)
    TrainingRun.objects.filter(pk=mine.pk).update(status="running", eta_seconds=300)
    running_cv_scan(alice, dataset)
    queued = run_create(user=bob, dataset=make_ready_dataset(bob, per_class=4), config=SHORT, queue=False)

    behind = bob_api.get(f"/api/runs/{queued.pk}/").json()["waiting_behind"]
    assert [(job["kind"], job["name"], job["mine"]) for job in behind] == [
        ("run", "", False), ("cross_validation", "", False)]  # another user's work, without its names
    assert behind[0]["seconds_left"] == 300 and 1100 <= behind[1]["seconds_left"] <= 1140

    alice_queued = run_create(user=alice, dataset=dataset, config=SHORT, queue=False)
    behind = alice_api.get(f"/api/runs/{alice_queued.pk}/").json()["waiting_behind"]
    assert [job["name"] for job in behind] == [f"run #{mine.pk}", f"“{dataset.name}”"]
    assert alice_api.get(f"/api/runs/{mine.pk}/").json()["waiting_behind"] == []  # only while queued


@pytest.mark.browser
def test_the_run_page_names_the_phase_and_the_time_left_from_the_first_epoch(live_asgi, page):
    try:
        signup(page, live_asgi.url, "gus")
        gus = get_user_model().objects.get(username="gus")
        dataset = make_ready_dataset(gus, per_class=60)
        from training_jobs.services import run_create

        live_asgi.worker.stop()  # so that the page opens on a queued run
        run = run_create(user=gus, dataset=dataset, config={**SHORT, "epochs": 3})
        scan = running_cv_scan(gus, dataset, started_ago_s=30)  # what the worker is busy with, as the page says
        page.goto(f"{live_asgi.url}/runs/{run.pk}/")
        line = page.locator("#run-progress-text")
        assert line.inner_text().startswith(
            f"Waiting for the training worker · behind a cross-validation scan of “{dataset.name}” (about 19m")
        assert " left) · estimated " in line.inner_text()
        scan.delete()
        page.reload()
        assert line.inner_text().startswith("Waiting for the training worker · estimated ")

        live_asgi.worker.start()
        texts, logs = [], set()
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and page.inner_text("#run-status") not in ("succeeded", "failed"):
            texts.append(line.inner_text())
            logs.add(page.inner_text("#run-log"))
            time.sleep(0.1)
        assert run_status(run.pk) == "succeeded"
        training = [t for t in texts if t.startswith("Training · ") and "epoch 1/3" in t]
        assert any(" left" in t and "images/s" in t and "batch " in t for t in training), texts
        assert any(t.startswith(("Preparing data · ", "Evaluating · ", "Occlusion maps · ", "Exporting · "))
                   for t in texts), set(texts)
        assert not any("started" in t or "evaluating the best epoch" in t for t in texts), "log lines stay below"
        assert any(log.startswith("started; fast_resnet") for log in logs), logs
        wait_for(lambda: line.inner_text().startswith("Finished in "), timeout=30, what="the final line")
    finally:
        connections.close_all()
