"""Imports run by real Celery workers on the real Redis, including a worker killed mid-import."""
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from fercore.classes import CLASSES
from ferweb.datasets.models import Dataset, DatasetItem
from ferweb.datasets.services import dataset_imports

from tests.conftest import ROOT, subprocess_env

from .conftest import class_tree, make_zip, photo, zip_bytes

pytestmark = pytest.mark.worker


def wait_for(predicate, timeout=60, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError("condition not met in time")


def finished(pk):
    dataset = Dataset.objects.get(pk=pk)
    return dataset if dataset.status != Dataset.Status.IMPORTING else None


def test_a_real_worker_imports_an_upload(celery_worker, alice_api):
    files = class_tree(per_class=2, splits=("train", "val"))
    response = alice_api.post(
        "/api/datasets/", {"name": "queued", "file": SimpleUploadedFile("faces.zip", zip_bytes(files))},
        format="multipart",
    )
    assert response.status_code == 201 and response.json()["status"] == "importing"
    dataset = wait_for(lambda: finished(response.json()["id"]), timeout=60)
    assert dataset.status == "ready", dataset.human_readable_error
    body = alice_api.get(f"/api/datasets/{dataset.pk}/").json()
    assert body["class_counts"] == {name: 4 for name in CLASSES}
    assert body["split_counts"] == {"train": 14, "val": 14}
    assert dataset.attempts == 1 and dataset.heartbeat_at is None
    assert not dataset.source  # the upload is removed once imported
    assert dataset.pixels_path.exists()


def slow_zip(path, photos=90):
    """Large photos with two faces each: decoding and detection take a few seconds in all."""
    small = cv2.imdecode(np.frombuffer(photo(2, seed=1), np.uint8), cv2.IMREAD_COLOR)
    big = cv2.resize(small, (4000, 3000), interpolation=cv2.INTER_LINEAR)
    data = cv2.imencode(".jpg", big, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes()
    return make_zip(path, {f"happy/p{i}.jpg": data for i in range(photos)}, compression=0)


def test_an_import_killed_with_its_worker_is_finished_when_the_worker_restarts(worker_process, alice_api, tmp_path):
    name = f"imports-{time.time_ns()}@localhost"
    worker = worker_process(queues=("inference",), name=name)
    with open(slow_zip(tmp_path / "photos.zip"), "rb") as handle:
        response = alice_api.post("/api/datasets/", {"name": "slow", "file": handle}, format="multipart")
    assert response.status_code == 201
    pk = response.json()["id"]

    started = wait_for(lambda: Dataset.objects.filter(pk=pk, heartbeat_at__isnull=False).first(), timeout=90, interval=0.01)
    worker.kill()
    crashed = Dataset.objects.get(pk=pk)
    assert crashed.status == "importing", "the import ended before the kill: make slow_zip slower"
    assert crashed.worker == name and crashed.attempts == 1
    assert started.progress < 100

    worker_process(queues=("inference",), name=name)  # same name, as `make run` restarts it
    dataset = wait_for(lambda: finished(pk), timeout=120)
    assert dataset.status == "ready", dataset.human_readable_error
    assert dataset.attempts == 2
    assert dataset.num_items == 180 and DatasetItem.objects.filter(dataset=dataset).count() == 180
    assert dataset.class_counts["happy"] == 180


@pytest.fixture
def prefork_worker(transactional_db, settings, tmp_path):
    """A worker with a prefork pool (as `make run`'s inference worker): its child can die alone."""
    from ferweb.celery import app

    app.control.purge()
    log = open(tmp_path / "prefork.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "ferweb", "worker", "-Q", "inference", "-c", "1", "--pool", "prefork",
         "-l", "INFO", "-n", f"prefork-{time.time_ns()}@localhost"],
        cwd=ROOT, env=subprocess_env(settings.MEDIA_ROOT), stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    yield proc
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
    log.close()


def pool_children(pid: int) -> list[int]:
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_an_import_whose_pool_process_is_killed_is_finished_by_the_same_worker(prefork_worker, alice_api, tmp_path):
    with open(slow_zip(tmp_path / "photos.zip"), "rb") as handle:
        response = alice_api.post("/api/datasets/", {"name": "oom", "file": handle}, format="multipart")
    pk = response.json()["id"]
    wait_for(lambda: Dataset.objects.filter(pk=pk, heartbeat_at__isnull=False).exists(), timeout=90, interval=0.01)
    children = pool_children(prefork_worker.pid)
    assert len(children) == 1
    os.kill(children[0], signal.SIGKILL)  # what the out-of-memory killer does
    assert Dataset.objects.get(pk=pk).status == "importing", "the import ended before the kill: make slow_zip slower"

    dataset = wait_for(lambda: finished(pk), timeout=120)
    assert dataset.status == "ready", dataset.human_readable_error
    assert dataset.attempts == 2 and dataset.num_items == 180
    assert prefork_worker.poll() is None  # the worker itself lived on


def test_a_crashed_import_is_failed_with_a_reason_after_its_last_attempt(transactional_db, alice, settings):
    dataset = Dataset.objects.create(
        owner=alice, name="doomed", attempts=settings.FERWEB_JOB_MAX_ATTEMPTS, worker="w1@host",
        heartbeat_at=timezone.now(),
    )
    assert dataset_imports.recover(worker="w1@host") == {"requeued": [], "failed": [dataset.pk]}
    dataset.refresh_from_db()
    assert dataset.status == "failed" and dataset.error == "worker_lost"
    assert dataset.human_readable_error.startswith(
        "The import stopped 2 times because its worker ended (crashed, killed or out of memory)"
    )


def test_the_sweep_leaves_live_imports_of_other_workers_alone_and_recovers_silent_ones(transactional_db, alice, settings):
    from ferweb.celery import app

    app.control.purge()
    live = Dataset.objects.create(owner=alice, name="live", attempts=1, worker="other@host",
                                  heartbeat_at=timezone.now())
    silent = Dataset.objects.create(owner=alice, name="silent", attempts=1, worker="gone@host",
                                    heartbeat_at=timezone.now() - timedelta(seconds=settings.FERWEB_JOB_STALE_SECONDS + 5))
    queued = Dataset.objects.create(owner=alice, name="queued")
    assert dataset_imports.recover(worker="me@host") == {"requeued": [silent.pk], "failed": []}
    silent.refresh_from_db()
    assert silent.status == "importing" and silent.heartbeat_at is None and silent.worker == ""
    live.refresh_from_db()
    assert live.heartbeat_at is not None and live.worker == "other@host"
    assert Dataset.objects.get(pk=queued.pk).heartbeat_at is None
    app.control.purge()
