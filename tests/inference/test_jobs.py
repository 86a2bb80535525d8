"""Batch and video jobs through a real Celery worker on real Redis."""
import csv
import io
import json
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fercore.classes import CLASSES
from inference.synthetic import clutter, draw_face, jpeg, place, scene


def make_clip(path, frames=24, fps=8):
    """Two drawn faces: one walks right, one stays put; MJPG in AVI, as a phone export might be."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    background = clutter(seed=4)
    left, right = draw_face(170, seed=1), draw_face(160, smile=1.0, seed=2)
    for i in range(frames):
        frame = background.copy()
        step = (i * 4) % 400
        place(frame, left, 20 + (step if step < 200 else 400 - step), 120)  # walks right, then back
        place(frame, right, 440, 200)
        writer.write(frame)
    writer.release()
    return path


def wait_for(client, job_id, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = client.get(f"/api/jobs/{job_id}/").json()
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return body
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {body['status']} after {timeout}s")


@pytest.mark.worker
def test_a_video_job_tracks_each_face_and_summarises_it(celery_worker, alice_api, bob_api, model_file, tmp_path):
    clip = make_clip(tmp_path / "clip.avi")
    upload = SimpleUploadedFile("clip.avi", clip.read_bytes(), content_type="video/x-msvideo")
    response = alice_api.post("/api/jobs/", {"file": upload, "every_k": 2}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["kind"] == "video"
    job = wait_for(alice_api, response.json()["id"])
    assert job["status"] == "succeeded", job
    assert job["processed"] == 12 and job["progress"] == 100.0

    summary = job["summary"]
    assert [face["id"] for face in summary["faces"]] == [1, 2]  # two people, two ids, no id churn
    for face in summary["faces"]:
        assert face["detections"] == 12
        assert face["dominant"] in CLASSES
        assert sum(face["share"].values()) == pytest.approx(1.0, abs=1e-3)
        assert len(face["timeline"]) == 12 and face["timeline"][-1]["t"] == pytest.approx(22 / 8)

    rows = list(csv.DictReader(io.StringIO(alice_api.get(job["results"]["csv"]).getvalue().decode())))
    assert len([row for row in rows if row["face_id"] in ("1", "2")]) == 24
    walker = [row for row in rows if row["face_id"] == "1"]
    assert [int(r["frame"]) for r in walker] == list(range(0, 24, 2))
    assert int(walker[-1]["x"]) > int(walker[0]["x"]) + 60  # the box followed the walking face

    data = json.loads(b"".join(alice_api.get(job["results"]["json"]).streaming_content))
    assert len(data["detections"]) == len(rows) and [face["id"] for face in data["faces"]] == [1, 2]
    assert bob_api.get(f"/api/jobs/{job['id']}/").status_code == 404
    assert bob_api.get(job["results"]["csv"]).status_code == 404


@pytest.mark.worker
def test_a_zip_of_photos_is_classified_photo_by_photo(celery_worker, alice_api, model_file):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i in range(3):
            image, _ = scene([draw_face(170, seed=i)], seed=i)
            archive.writestr(f"photos/{i}.jpg", jpeg(image))
        archive.writestr("photos/broken.jpg", b"\xff\xd8\xff not really")
        archive.writestr("notes.txt", "ignored")
    upload = SimpleUploadedFile("photos.zip", buffer.getvalue(), content_type="application/zip")
    job_id = alice_api.post("/api/jobs/", {"file": upload}, format="multipart").json()["id"]
    job = wait_for(alice_api, job_id)
    assert job["status"] == "succeeded", job
    assert job["summary"]["items"] == 4 and job["summary"]["unreadable"] == 1
    assert job["summary"]["detections"] == 3 == sum(job["summary"]["label_counts"].values())


@pytest.mark.worker
def test_an_unreadable_video_fails_with_a_reason(celery_worker, alice_api, model_file):
    upload = SimpleUploadedFile("clip.mp4", b"\x00\x00\x00\x18ftypmp42 garbage", content_type="video/mp4")
    job = wait_for(alice_api, alice_api.post("/api/jobs/", {"file": upload}, format="multipart").json()["id"])
    assert job["status"] == "failed"
    assert job["error"] == "unreadable_video"
    assert "could not be opened" in job["human_readable_error"] or "no frame" in job["human_readable_error"]


def test_an_unsupported_upload_lists_the_valid_choices(alice_api, model_file):
    upload = SimpleUploadedFile("notes.txt", b"hello")
    response = alice_api.post("/api/jobs/", {"file": upload}, format="multipart")
    assert response.status_code == 400
    assert ".zip of photos" in response.json()["detail"] and ".mp4" in response.json()["detail"]


def test_jobs_of_others_do_not_exist_but_staff_see_them(alice, alice_api, bob_api, carol_api, model_file, tmp_path):
    from inference.models import InferenceJob

    job = InferenceJob.objects.create(owner=alice, kind="video", source_name="x.avi", source="inference_uploads/x.avi")
    assert bob_api.get(f"/api/jobs/{job.pk}/").status_code == 404
    assert bob_api.post(f"/api/jobs/{job.pk}/cancel/").status_code == 404
    assert bob_api.delete(f"/api/jobs/{job.pk}/").status_code == 404
    assert [j["id"] for j in bob_api.get("/api/jobs/").json()] == []
    assert carol_api.get(f"/api/jobs/{job.pk}/").status_code == 200
    assert alice_api.post(f"/api/jobs/{job.pk}/cancel/").json()["status"] == "cancelled"


def test_videos_and_zip_members_over_the_pixel_limit_are_refused_from_their_headers(tmp_path):
    from fercore.archive import Limits
    from inference.synthetic import png_bomb
    from inference.tracking import SourceError, video_frames, zip_images

    with pytest.raises(SourceError) as refused:
        video_frames(make_clip(tmp_path / "clip.avi", frames=2), every_k=1, max_seconds=60, max_pixels=640 * 480 - 1)
    assert refused.value.code == "too_many_pixels" and "640 x 480" in refused.value.message
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as archive:
        archive.writestr("bomb.png", png_bomb(30000, 30000))
    total, items = zip_images(tmp_path / "photos.zip", limits=Limits(max_members=10, max_uncompressed_bytes=10**9,
                                                                     max_compression_ratio=10**6,
                                                                     max_image_pixels=50_000_000))
    [(name, gray, error)] = list(items)
    assert gray is None and "more than 50,000,000 pixels" in error


def upload_path(job_id):
    from django.conf import settings

    from inference.models import InferenceJob

    job = InferenceJob.objects.get(pk=job_id)
    return Path(settings.MEDIA_ROOT) / job.source.name if job.source else None


def post_clip(client, tmp_path, frames=24, fps=8):
    clip = make_clip(tmp_path / "clip.avi", frames=frames, fps=fps)
    upload = SimpleUploadedFile("clip.avi", clip.read_bytes(), content_type="video/x-msvideo")
    response = client.post("/api/jobs/", {"file": upload}, format="multipart")
    assert response.status_code == 201, response.content
    return response.json()["id"]


def test_the_owner_deletes_a_job_with_its_upload_and_results(alice_api, bob_api, model_file, tmp_path, django_capture_on_commit_callbacks):
    from inference.models import InferenceJob

    job_id = post_clip(alice_api, tmp_path)
    upload = upload_path(job_id)
    results = InferenceJob.objects.get(pk=job_id).results_dir
    results.mkdir(parents=True)
    (results / "results.csv").write_text("item,frame\n")
    assert upload.exists()

    refused = bob_api.delete(f"/api/jobs/{job_id}/")
    assert refused.status_code == 404 and refused.json()["detail"] == "No such job."
    assert upload.exists() and results.exists()

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.delete(f"/api/jobs/{job_id}/")
    assert response.status_code == 204
    assert not InferenceJob.objects.filter(pk=job_id).exists()
    assert not upload.exists() and not results.exists()
    assert alice_api.get(f"/api/jobs/{job_id}/").status_code == 404


def test_cancelling_a_job_removes_its_upload(alice_api, model_file, tmp_path, django_capture_on_commit_callbacks):
    job_id = post_clip(alice_api, tmp_path)
    upload = upload_path(job_id)
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.post(f"/api/jobs/{job_id}/cancel/").json()["status"] == "cancelled"
    assert not upload.exists() and upload_path(job_id) is None


def test_the_delete_route_is_in_the_schema(alice_api):
    schema = alice_api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    delete = schema["paths"]["/api/jobs/{id}/"]["delete"]
    assert {"204", "404"} <= set(delete["responses"])
    assert "cancelled first" in delete["description"]


@pytest.mark.worker
def test_finished_jobs_keep_their_results_but_not_their_upload(celery_worker, alice_api, model_file, tmp_path):
    succeeded = wait_for(alice_api, post_clip(alice_api, tmp_path))
    assert succeeded["status"] == "succeeded", succeeded
    assert upload_path(succeeded["id"]) is None
    assert alice_api.get(succeeded["results"]["csv"]).status_code == 200

    broken = SimpleUploadedFile("clip.mp4", b"\x00\x00\x00\x18ftypmp42 garbage", content_type="video/mp4")
    failed = wait_for(alice_api, alice_api.post("/api/jobs/", {"file": broken}, format="multipart").json()["id"])
    assert failed["status"] == "failed" and upload_path(failed["id"]) is None
    from django.conf import settings

    uploads = Path(settings.MEDIA_ROOT) / "inference_uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


@pytest.mark.worker
def test_deleting_a_running_job_stops_it_and_leaves_nothing_behind(celery_worker, alice_api, model_file, tmp_path):
    from inference.models import InferenceJob

    job_id = post_clip(alice_api, tmp_path, frames=900, fps=30)
    results = InferenceJob(pk=job_id).results_dir
    deadline = time.monotonic() + 60
    while not InferenceJob.objects.filter(pk=job_id, processed__gt=0).exists():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert alice_api.delete(f"/api/jobs/{job_id}/").status_code == 204
    assert not InferenceJob.objects.filter(pk=job_id).exists()
    # The worker stops at its next progress write (every 0.5 s) and must not write anything after.
    for _ in range(20):
        assert not results.exists()
        time.sleep(0.1)
    from django.conf import settings

    uploads = Path(settings.MEDIA_ROOT) / "inference_uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


def test_the_tracker_keeps_ids_and_retires_lost_faces():
    from inference.tracking import IoUTracker

    tracker = IoUTracker(max_missed=1)
    assert tracker.update([(0, 0, 50, 50), (200, 0, 50, 50)]) == [1, 2]
    assert tracker.update([(205, 2, 50, 50), (4, 1, 50, 50)]) == [2, 1]
    assert tracker.update([(4, 1, 50, 50)]) == [1]
    assert tracker.update([]) == []
    assert tracker.update([(200, 0, 50, 50)]) == [3]  # face 2 was gone too long: a new person


def test_face_timelines_stay_bounded_however_long_the_video():
    from inference.tracking import FaceStats

    stats = FaceStats(CLASSES, max_points=50)
    probs = np.eye(len(CLASSES))[3]
    for i in range(10_000):
        stats.add(i / 25, probs)
    summary = stats.summary(1)
    assert len(summary["timeline"]) <= 50
    assert summary["dominant"] == "happy" and summary["share"]["happy"] == 1.0
    assert summary["timeline"][-1]["t"] > 390


@pytest.mark.django_db(transaction=True)
def test_the_job_socket_sends_the_status_then_forwards_progress_to_the_owner_only(alice, bob):
    import asyncio

    from channels.layers import get_channel_layer
    from channels.testing import WebsocketCommunicator

    from ferweb.asgi import application
    from inference.models import InferenceJob

    job = InferenceJob.objects.create(owner=alice, kind="video", source_name="x.avi", source="inference_uploads/x.avi")

    async def run(user):
        comm = WebsocketCommunicator(application, f"/ws/jobs/{job.pk}/", headers=[(b"origin", b"http://127.0.0.1")])
        comm.scope["user"] = user
        connected, code = await comm.connect()
        if not connected:
            return code, None, None
        first = json.loads(await comm.receive_from(timeout=5))
        await get_channel_layer().group_send(job.group_name, {"type": "job.progress", "id": job.pk, "status": "running", "progress": 42.0})
        second = json.loads(await comm.receive_from(timeout=5))
        await comm.disconnect()
        return None, first, second

    _, first, second = asyncio.run(run(alice))
    assert first["status"] == "queued" and first["id"] == job.pk
    assert second == {"type": "job.progress", "id": job.pk, "status": "running", "progress": 42.0}
    assert asyncio.run(run(bob))[0] == 4404


@pytest.mark.worker
def test_a_job_whose_worker_is_killed_is_finished_by_the_restarted_worker(worker_process, alice, alice_api, served_model, tmp_path):
    from inference.models import InferenceJob

    clip = make_clip(tmp_path / "long.avi", frames=900, fps=30)
    worker = worker_process(queues=("inference",), name="infer-crash@localhost")
    upload = SimpleUploadedFile("long.avi", clip.read_bytes(), content_type="video/x-msvideo")
    job_id = alice_api.post("/api/jobs/", {"file": upload, "every_k": 1}, format="multipart").json()["id"]
    deadline = time.monotonic() + 60
    while InferenceJob.objects.get(pk=job_id).processed == 0:
        assert time.monotonic() < deadline, worker.output()[-2000:]
        time.sleep(0.05)
    worker.kill()
    job = InferenceJob.objects.get(pk=job_id)
    assert job.status == "running" and job.processed < 900

    worker_process(queues=("inference",), name="infer-crash@localhost")  # the same worker, restarted
    job = wait_for(alice_api, job_id, timeout=120)
    assert job["status"] == "succeeded" and job["processed"] == 900
    assert InferenceJob.objects.get(pk=job_id).attempts == 2
    assert [face["id"] for face in job["summary"]["faces"]] == [1, 2]
