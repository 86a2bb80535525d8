"""Uploads through the API, processed by a real Celery worker on real Redis."""
import time

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fercore.classes import CLASSES
from fercore.images import decode_image
from fercore.preprocess import softmax, to_model_input
from ferweb.labeling import services
from ferweb.labeling.models import LabelingSet
from fercore.faces import FaceDetector
from inference.tracking import iou


def wait_ready(client, set_id, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/labeling/sets/{set_id}/").json()
        if body["status"] != "processing":
            return body
        time.sleep(0.3)
    raise AssertionError(f"set {set_id} still processing after {timeout}s: {body}")


def uploads(files: dict) -> list:
    return [SimpleUploadedFile(name, data) for name, (data, _, _) in files.items()]


def test_photos_hold_faces_the_detector_finds(photos):
    """The test photos are fair: every placed face is found where it was put, the empty one has none."""
    detector = FaceDetector()
    for name, (data, count, boxes) in photos.items():
        if name == "notes.txt":
            continue
        found = detector.detect(decode_image(data, max_pixels=50_000_000), thorough=True)
        assert len(found) == count, name
        for face, box in zip(found, boxes):
            assert iou(face.box, box) > 0.3, (name, face.box, box)


@pytest.mark.worker
def test_uploaded_photos_become_faces_with_proposals_from_the_active_model(
    celery_worker, alice_api, model_file, photos, photo_zip
):
    response = alice_api.post(
        "/api/labeling/sets/", {"name": "Office party", "files": uploads(photos)}, format="multipart"
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["photos_total"] == 5
    body = wait_ready(alice_api, created["id"])

    assert body["status"] == "ready" and body["progress"] == 100.0
    assert (body["photos_total"], body["photos_done"]) == (5, 5)
    assert body["counts"] == {"pending": 4, "confirmed": 0, "skipped": 0, "rejected": 0, "all": 4}
    report = body["report"]
    assert [m["name"] for m in report["unreadable"]["members"]] == ["notes.txt"]
    assert "not an image" in report["unreadable"]["members"][0]["reason"]
    assert report["no_face"]["members"] == [{"name": "nothing.jpg", "reason": "no face found"}]
    assert report["model"] == {"version": "test-default", "error": ""}

    faces = alice_api.get(f"/api/labeling/sets/{created['id']}/faces/").json()
    assert faces["count"] == 4
    by_source = {f["source_name"]: f for f in faces["results"]}
    assert set(by_source) == {"one.jpg", "two.png#1", "two.png#2", "turned.jpg"}

    # Each proposal is what the active model says about the stored crop.
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    for face in faces["results"]:
        crop_png = alice_api.get(face["crop_url"])
        assert crop_png.status_code == 200 and crop_png["Content-Type"] == "image/png"
        crop = cv2.imdecode(np.frombuffer(crop_png.content, np.uint8), cv2.IMREAD_GRAYSCALE)
        assert crop.shape == (48, 48)
        expected = softmax(session.run(["logits"], {"input": to_model_input(crop[None])})[0])[0]
        assert face["model_version"] == "test-default"
        assert face["proposed_label"] == CLASSES[int(np.argmax(expected))]
        assert face["proposed_probability"] == pytest.approx(float(expected.max()), abs=1e-3)
        assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert face["status"] == "pending" and face["confirmed_label"] is None

    # Boxes are in the upright photo: EXIF orientation was applied before detection.
    turned_box = photos["turned.jpg"][2][0]
    assert iou(by_source["turned.jpg"]["box"], turned_box) > 0.3
    assert iou(by_source["two.png#2"]["box"], photos["two.png"][2][1]) > 0.3

    # More photos, as a zip, join the same set; litter is ignored, other files listed.
    more = alice_api.post(
        f"/api/labeling/sets/{created['id']}/photos/",
        {"files": [SimpleUploadedFile("party.zip", photo_zip, content_type="application/zip")]}, format="multipart",
    )
    assert more.status_code == 202, more.content
    body = wait_ready(alice_api, created["id"])
    assert body["status"] == "ready"
    assert (body["photos_total"], body["photos_done"]) == (8, 8)
    assert body["counts"]["all"] == 6
    assert [m["name"] for m in body["report"]["unreadable"]["members"]] == ["notes.txt", "party.zip/party/readme.txt"]
    sources = {f["source_name"] for f in alice_api.get(f"/api/labeling/sets/{created['id']}/faces/").json()["results"]}
    assert {"party.zip/party/p0.jpg", "party.zip/party/p1.jpg"} <= sources
    # Processed photos are not kept: the crops are what labeling needs.
    labeling_set = LabelingSet.objects.get(pk=created["id"])
    assert not any(p.file for p in labeling_set.photos.all())
    assert not [p for p in labeling_set.storage_dir.rglob("*") if p.is_file()]


def test_without_a_model_faces_are_still_stored_without_proposals(alice, tmp_path, settings, photos):
    settings.FERWEB_DEFAULT_MODEL = tmp_path / "missing.onnx"
    labeling_set = services.labeling_set_create(
        owner=alice, name="No model", uploads=[SimpleUploadedFile("one.jpg", photos["one.jpg"][0])]
    )
    assert services.labeling_jobs.claim(labeling_set.pk, worker="test@host")
    done = services.labeling_process(set_id=labeling_set.pk)
    assert done.status == LabelingSet.Status.READY
    assert "missing.onnx does not exist" in done.report["model"]["error"]
    face = done.faces.get()
    assert face.proposed_label is None and face.probabilities == {} and face.model_version == ""
    with pytest.raises(services.LabelingError, match="no proposal"):
        services.labeling_face_update(face=face, status="confirmed")
    assert services.labeling_face_update(face=face, label="sad").confirmed_class == "sad"


def test_a_photo_over_the_size_limit_is_listed_not_read(alice, model_file, photos, settings):
    settings.FERWEB_MAX_IMAGE_BYTES = len(photos["one.jpg"][0]) - 1
    labeling_set = services.labeling_set_create(
        owner=alice, name="Big", uploads=[SimpleUploadedFile("one.jpg", photos["one.jpg"][0])]
    )
    services.labeling_jobs.claim(labeling_set.pk, worker="test@host")
    done = services.labeling_process(set_id=labeling_set.pk)
    assert done.status == LabelingSet.Status.READY and done.faces.count() == 0
    assert done.report["unreadable"]["members"][0]["name"] == "one.jpg"
    assert "MB limit for one photo" in done.report["unreadable"]["members"][0]["reason"]


def test_a_pixel_bomb_photo_is_listed_from_its_header_not_decoded(alice, model_file, photos):
    from inference.synthetic import png_bomb

    bomb = png_bomb(30000, 30000)  # 110 KB, 900 MB once decoded
    labeling_set = services.labeling_set_create(owner=alice, name="Bomb", uploads=[
        SimpleUploadedFile("bomb.png", bomb), SimpleUploadedFile("one.jpg", photos["one.jpg"][0]),
    ])
    services.labeling_jobs.claim(labeling_set.pk, worker="test@host")
    started = time.perf_counter()
    done = services.labeling_process(set_id=labeling_set.pk)
    assert time.perf_counter() - started < 10  # detection on one.jpg included
    assert done.status == LabelingSet.Status.READY and done.faces.count() == 1
    assert done.report["unreadable"]["members"] == [
        {"name": "bomb.png", "reason": "The image has more than 50,000,000 pixels; scale it down and try again."}
    ]


def test_a_set_is_claimed_once_and_a_stale_claim_is_taken_over(alice, photos, settings):
    settings.FERWEB_JOB_MAX_ATTEMPTS = 3  # the claims below start it three times
    labeling_set = services.labeling_set_create(
        owner=alice, name="Claims", uploads=[SimpleUploadedFile("one.jpg", photos["one.jpg"][0])]
    )
    assert services.labeling_jobs.claim(labeling_set.pk, worker="w1@host")
    assert not services.labeling_jobs.claim(labeling_set.pk, worker="w2@host")  # held, heartbeat fresh
    # The same worker name getting the task back after its process died takes it over.
    assert services.labeling_jobs.claim(labeling_set.pk, worker="w1@host", redelivered=True)
    settings.FERWEB_JOB_STALE_SECONDS = -1  # every heartbeat is now stale
    assert services.labeling_jobs.claim(labeling_set.pk, worker="w2@host")


@pytest.mark.worker
def test_a_set_left_processing_by_a_dead_worker_is_finished_by_the_next_one(
    celery_worker, alice, model_file, photos, monkeypatch
):
    from datetime import timedelta

    from django.db import transaction
    from django.utils import timezone

    from ferweb.labeling.tasks import process_labeling_set

    with monkeypatch.context() as lost, transaction.atomic():
        lost.setattr(process_labeling_set, "delay", lambda *args: None)  # its message died with the worker
        labeling_set = services.labeling_set_create(
            owner=alice, name="Orphan", uploads=[SimpleUploadedFile("one.jpg", photos["one.jpg"][0])]
        )
        # As if a worker had claimed it and died, with no task left in the queue.
        LabelingSet.objects.filter(pk=labeling_set.pk).update(
            worker="dead@host", heartbeat_at=timezone.now() - timedelta(hours=1)
        )
    assert services.labeling_jobs.recover(worker="fresh@host")["requeued"] == [labeling_set.pk]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        labeling_set.refresh_from_db()
        if labeling_set.status != LabelingSet.Status.PROCESSING:
            break
        time.sleep(0.2)
    assert labeling_set.status == LabelingSet.Status.READY and labeling_set.faces.count() == 1
    assert labeling_set.heartbeat_at is None and labeling_set.worker == ""
