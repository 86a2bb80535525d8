"""The import's phases as the pages show them: queued, checking_archive, importing (with progress), then
none once it ended; and an import deleted while it reads stops and leaves nothing behind."""
import os
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ferweb.datasets.models import Dataset
from ferweb.datasets.services import dataset_imports

from .conftest import class_tree, zip_bytes
from .test_worker import slow_zip, wait_for


def test_the_import_checks_the_archive_then_imports_with_rising_progress(alice_api, upload, monkeypatch):
    seen = []
    heartbeat = dataset_imports.heartbeat

    def recorded(job, **fields):
        seen.append((fields.get("phase"), fields.get("progress")))
        return heartbeat(job, **fields)

    monkeypatch.setattr(dataset_imports, "heartbeat", recorded)
    response = upload(alice_api, "phases", zip_bytes(class_tree(per_class=2)))
    assert response.status_code == 201
    assert seen[0] == ("checking_archive", 0)
    phases, progress = zip(*seen[1:])
    assert set(phases) == {"importing"} and list(progress) == sorted(progress) and progress[-1] == 90
    body = alice_api.get(f"/api/datasets/{response.json()['id']}/").json()
    assert body["status"] == "ready" and body["phase"] == "" and body["progress"] == 100


def test_a_new_upload_waits_as_queued_and_the_list_shows_it_at_once(alice_api):
    response = alice_api.post("/api/datasets/", {"name": "waiting", "file": SimpleUploadedFile(
        "faces.zip", zip_bytes(class_tree(per_class=1)))}, format="multipart")  # no worker: it stays queued
    assert response.status_code == 201
    listed = [d for d in alice_api.get("/api/datasets/").json() if d["id"] == response.json()["id"]]
    assert [(d["name"], d["status"], d["phase"], d["progress"]) for d in listed] == [("waiting", "importing", "queued", 0)]


@pytest.mark.worker
def test_a_real_worker_reports_importing_with_progress_before_it_is_ready(celery_worker, alice_api, tmp_path):
    with open(slow_zip(tmp_path / "photos.zip", photos=40), "rb") as handle:
        response = alice_api.post("/api/datasets/", {"name": "slow", "file": handle}, format="multipart")
    pk = response.json()["id"]
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        body = alice_api.get(f"/api/datasets/{pk}/").json()
        seen.add((body["status"], body["phase"], 0 < body["progress"] < 100))
        if body["status"] != "importing":
            break
        time.sleep(0.02)
    assert ("importing", "importing", True) in seen
    assert body["status"] == "ready" and body["phase"] == ""


@pytest.mark.worker
def test_a_dataset_deleted_while_it_imports_stops_the_import_and_leaves_no_files(celery_worker, alice_api, tmp_path):
    with open(slow_zip(tmp_path / "photos.zip", photos=40), "rb") as handle:
        response = alice_api.post("/api/datasets/", {"name": "slow", "file": handle}, format="multipart")
    pk = response.json()["id"]
    dataset = wait_for(lambda: Dataset.objects.filter(pk=pk, phase="importing").first(), timeout=90, interval=0.01)
    upload_path = dataset.source.path
    preview = alice_api.get(f"/api/datasets/{pk}/delete-preview/").json()
    assert preview["what"] == f'Dataset #{pk} "slow" will be deleted with its upload; the import stops.'
    assert preview["frees_bytes"] >= tmp_path.joinpath("photos.zip").stat().st_size
    assert alice_api.delete(f"/api/datasets/{pk}/").status_code == 204

    # The worker takes the next upload only once it has let go of this one.
    next_one = alice_api.post("/api/datasets/", {"name": "next", "file": SimpleUploadedFile(
        "faces.zip", zip_bytes(class_tree(per_class=1)))}, format="multipart").json()["id"]
    assert wait_for(lambda: Dataset.objects.filter(pk=next_one, status="ready").exists(), timeout=120)
    assert not Dataset.objects.filter(pk=pk).exists()
    assert not dataset.storage_dir.exists()
    assert not os.path.exists(upload_path)
