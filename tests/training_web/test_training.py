"""Runs trained by a real Celery worker on real Redis: results, live events, cancel, a killed worker."""
import json
import time

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from ferweb.asgi import application
from fercore.classes import CLASS_INDEX, CLASSES
from tests.training_web.conftest import make_ready_dataset
from tests.training_web.faces import drawn_faces
from training_jobs.models import TrainingRun

pytestmark = pytest.mark.worker

# Small and fast, but real: the 2026 lightweight residual network on drawn faces.
TINY = {"architecture": "light_residual", "epochs": 8, "batch_size": 16, "num_threads": 1, "seed": 1,
        # On drawn faces the fitted temperature hits its floor and blows logits up 20x; not what is tested here.
        "temperature_scaling": False}


def wait_for(predicate, timeout=60, interval=0.1, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def run_status(run_id):
    return TrainingRun.objects.get(pk=run_id).status


def ws_headers(user):
    """A session cookie for `user`, as a browser would send it on the websocket."""
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()),
            (b"origin", b"http://testserver")]


@pytest.mark.django_db(transaction=True)
def test_a_run_trains_to_well_above_chance_and_streams_its_events_in_order(
    celery_worker, alice, bob, alice_api, client
):
    dataset = make_ready_dataset(alice, per_class=80)
    events, refused = [], {}

    # Sessions are made here, outside the event loop, so no database connection is left open in it.
    bob_headers, alice_headers = ws_headers(bob), ws_headers(alice)

    async def watch(run_id):
        intruder = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=bob_headers)
        connected, code = await intruder.connect()
        refused["bob"] = (connected, code)
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run_id}/", headers=alice_headers)
        connected, _ = await communicator.connect()
        assert connected
        while True:
            event = await communicator.receive_json_from(timeout=90)
            events.append(event)
            if event["type"] == "run.status" and event["status"] in ("succeeded", "failed", "cancelled"):
                break
            if event["type"] == "run.history" and event["status"] in ("succeeded", "failed", "cancelled"):
                break
        await communicator.disconnect()

    response = alice_api.post("/api/runs/", {"dataset": dataset.pk, **TINY}, format="json")
    assert response.status_code == 201, response.content
    run_id = response.json()["id"]
    async_to_sync(watch)(run_id)

    # Bob is refused before joining the group: he receives nothing.
    assert refused["bob"] == (False, 4404)

    # The history comes first, then the live stream, in order.
    assert events[0]["type"] == "run.history"
    epochs = [e["epoch"] for e in events[0]["history"]] + [e["epoch"] for e in events if e["type"] == "run.epoch"]
    assert epochs == sorted(epochs) and sorted(set(epochs)) == list(range(1, TINY["epochs"] + 1))
    live = [e for e in events[1:] if e["type"] in ("run.batch", "run.epoch")]
    assert any(e["type"] == "run.batch" for e in live)
    progress = [e["progress"]["percent"] for e in live]
    assert progress == sorted(progress), "progress never goes backwards"
    epoch_event = next(e for e in events if e["type"] == "run.epoch")
    for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"):
        assert key in epoch_event
    assert epoch_event["progress"]["phase"] == "training" and epoch_event["progress"]["eta_seconds"] > 0
    assert events[-1]["status"] == "succeeded", events[-1]

    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == "succeeded" and run.progress == 100 and run.attempts == 1
    # Three drawn classes: chance is 1/3.
    assert run.metrics["accuracy"] >= 0.75, run.metrics["accuracy"]
    assert len(run.history) == TINY["epochs"]
    assert run.param_count and run.wall_time_s > 0
    cm = np.array(run.metrics["confusion_matrix"])
    assert cm.shape == (7, 7) and cm.sum() == run.metrics["num_samples"]
    assert {o["label"] for o in run.metrics["occlusion"]} == {"happy", "sad", "surprise"}
    assert len(run.metrics["occlusion"][0]["map"]) == 24

    # The model version: a contract ONNX file that agrees with the stored evaluation.
    version = run.model_versions.get()
    assert version.latency_ms > 0 and version.parity_max_abs_diff < 1e-4
    model = onnx.load(str(version.path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["fer.architecture"] == "light_residual" and meta["fer.version"] == version.version
    # Where it came from: the data it was trained on and the code that trained it.
    provenance = run.metrics["provenance"]
    assert len(provenance["dataset_sha256"]) == 64 and provenance["code_version"]
    assert json.loads(meta["fer.metrics"])["provenance"] == provenance
    pixels, labels = drawn_faces(20, seed=99)
    session = ort.InferenceSession(str(version.path), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"input": pixels[:, None].astype(np.float32) / 255})[0]
    assert logits.shape == (60, len(CLASSES))
    assert (logits.argmax(1) == labels).mean() >= 0.75

    # The API and the run page carry the evaluation.
    body = alice_api.get(f"/api/runs/{run_id}/").json()
    assert body["metrics"]["confusion_matrix"] == run.metrics["confusion_matrix"]
    assert body["model_version"]["id"] == version.pk
    assert set(body["metrics"]["roc"]) == set(CLASSES)
    client.force_login(alice)
    page = client.get(f"/runs/{run_id}/").content.decode()
    assert 'id="confusion-counts"' in page and '"confusion_matrix"' in page
    assert provenance["dataset_sha256"][:12] in page and provenance["code_version"] in page

    # Making it active switches alice's predictions, not bob's.
    from inference.selectors import active_model_for

    assert alice_api.post(f"/api/models/{version.pk}/activate/").status_code == 200
    assert active_model_for(alice).path == version.path
    assert active_model_for(bob).model_version_id is None


@pytest.mark.django_db(transaction=True)
def test_cancel_stops_a_running_run_within_a_batch(celery_worker, alice, alice_api):
    dataset = make_ready_dataset(alice, per_class=60)
    slow = {**TINY, "epochs": 200, "batch_size": 4}
    run_id = alice_api.post("/api/runs/", {"dataset": dataset.pk, **slow}, format="json").json()["id"]
    wait_for(lambda: TrainingRun.objects.get(pk=run_id).last_batch, what="batch progress")
    asked = time.monotonic()
    response = alice_api.post(f"/api/runs/{run_id}/cancel/")
    assert response.status_code == 200 and response.json()["cancel_requested"] is True
    wait_for(lambda: run_status(run_id) == "cancelled", timeout=20, interval=0.05, what="cancelled")
    assert time.monotonic() - asked < 5
    run = TrainingRun.objects.get(pk=run_id)
    assert run.error == "cancelled" and len(run.history) < slow["epochs"]
    assert run.cancel_requested and run.progress > 0, "what was done so far stays on the record"
    assert not run.model_versions.exists()


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_run_resumes_from_its_last_epoch(worker_process, alice, alice_api):
    dataset = make_ready_dataset(alice, per_class=60)
    name = "train-resume@localhost"
    worker = worker_process(queues=("training",), name=name)
    config = {**TINY, "epochs": 8, "batch_size": 8}
    run_id = alice_api.post("/api/runs/", {"dataset": dataset.pk, **config}, format="json").json()["id"]
    wait_for(lambda: len(TrainingRun.objects.get(pk=run_id).history) >= 2, timeout=90, what="two epochs")
    worker.kill()
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == "running" and run.worker == name

    worker_process(queues=("training",), name=name)
    wait_for(lambda: run_status(run_id) in ("succeeded", "failed"), timeout=120, interval=0.5, what="the resumed run")
    run = TrainingRun.objects.get(pk=run_id)
    assert run.status == "succeeded", (run.error, run.human_readable_error)
    assert run.attempts == 2
    assert run.metrics["resumed_from_epoch"] >= 2
    assert [h["epoch"] for h in run.history] == list(range(1, config["epochs"] + 1))
    assert run.model_versions.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_run_whose_worker_died_twice_fails_with_the_reason(alice, settings):
    from django.utils import timezone

    from training_jobs.services import training_runs

    assert settings.FERWEB_JOB_MAX_ATTEMPTS == 2
    dataset = make_ready_dataset(alice, per_class=5)
    once = TrainingRun.objects.create(owner=alice, dataset=dataset, architecture="light_residual", optimizer="nadam",
                                      status="running", worker="w@host", attempts=1, heartbeat_at=timezone.now())
    twice = TrainingRun.objects.create(owner=alice, dataset=dataset, architecture="light_residual", optimizer="nadam",
                                       status="running", worker="w@host", attempts=2, heartbeat_at=timezone.now())
    assert training_runs.recover(worker="w@host") == {"requeued": [once.pk], "failed": [twice.pk]}, (
        "the first death is survived: the run resumes")
    twice.refresh_from_db()
    assert twice.status == "failed" and twice.error == "worker_lost"
    assert "stopped 2 times because its worker ended" in twice.human_readable_error
    assert not TrainingRun.objects.filter(pk=twice.pk, status="queued").exists()


def test_drawn_classes_are_canonical():
    _, labels = drawn_faces(2)
    assert set(labels.tolist()) == {CLASS_INDEX["happy"], CLASS_INDEX["sad"], CLASS_INDEX["surprise"]}


@pytest.mark.django_db
def test_a_run_with_a_stale_heartbeat_is_requeued_by_any_worker(alice, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from training_jobs.services import training_runs

    dataset = make_ready_dataset(alice, per_class=5)
    now = timezone.now()
    stale = TrainingRun.objects.create(owner=alice, dataset=dataset, architecture="light_residual", optimizer="nadam",
                                       status="running", worker="gone@host", attempts=1,
                                       heartbeat_at=now - timedelta(minutes=30))
    alive = TrainingRun.objects.create(owner=alice, dataset=dataset, architecture="light_residual", optimizer="nadam",
                                       status="running", worker="busy@host", attempts=1, heartbeat_at=now)
    with django_capture_on_commit_callbacks() as sent:
        assert training_runs.recover(worker="fresh@host")["requeued"] == [stale.pk]
    assert len(sent) == 1, "one message re-sent, for the stale run"
    stale.refresh_from_db()
    alive.refresh_from_db()
    assert stale.status == "queued" and stale.worker == ""
    assert alive.status == "running" and alive.worker == "busy@host"
