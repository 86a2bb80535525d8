"""The webcam consumer over a real channel layer, and the page in headless Chromium with a fake camera."""
import asyncio
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from ferweb.asgi import application
from fercore.classes import CLASSES
from inference.synthetic import FER_ZIP, clutter, draw_face, jpeg, place, upscale

from ..conftest import signup


def communicator(user):
    comm = WebsocketCommunicator(application, "/ws/webcam/", headers=[(b"origin", b"http://127.0.0.1")])
    comm.scope["user"] = user
    return comm


async def connect(user):
    comm = communicator(user)
    connected, _ = await comm.connect()
    assert connected
    assert json.loads(await comm.receive_from(timeout=5)) == {"type": "ready"}
    return comm


@pytest.mark.django_db(transaction=True)
def test_the_webcam_socket_answers_each_frame_with_tracked_faces(alice, model_file, two_face_photo):
    image, truths = two_face_photo

    async def run():
        comm = await connect(alice)
        replies = []
        for shift in (0, 6):
            moved = np.roll(image, shift, axis=1)
            await comm.send_to(bytes_data=jpeg(moved))
            replies.append(json.loads(await comm.receive_from(timeout=10)))
        await comm.disconnect()
        return replies

    first, second = asyncio.run(run())
    assert first["type"] == "prediction" and first["model_version"] == "default"
    assert [face["id"] for face in first["faces"]] == [1, 2]
    assert [face["id"] for face in second["faces"]] == [1, 2]  # same people, same ids
    for face in first["faces"]:
        assert face["label"] in CLASSES and len(face["probabilities"]) == 7
    assert set(first["timing_ms"]) == {"decode", "detect", "classify", "total", "reply"}


@pytest.mark.django_db(transaction=True)
def test_a_second_frame_while_one_is_in_flight_is_dropped_not_queued(alice, model_file, two_face_jpeg, monkeypatch):
    import threading

    from inference import consumers

    # Hold the first frame in the serving pool until the others have been answered, so the
    # test does not depend on how fast this machine serves a frame.
    release = threading.Event()
    predict = consumers._predict

    def held_predict(frame, model_path):
        release.wait(10)
        return predict(frame, model_path)

    monkeypatch.setattr(consumers, "_predict", held_predict)

    async def run():
        comm = await connect(alice)
        for _ in range(3):
            await comm.send_to(bytes_data=two_face_jpeg)
        early = [json.loads(await comm.receive_from(timeout=10)) for _ in range(2)]
        release.set()
        last = json.loads(await comm.receive_from(timeout=10))
        await comm.disconnect()
        return early, last

    early, last = asyncio.run(run())
    assert [reply["type"] for reply in early] == ["dropped", "dropped"]
    assert last["type"] == "prediction" and len(last["faces"]) == 2


@pytest.mark.django_db(transaction=True)
def test_bad_frames_get_an_error_reply_and_the_socket_stays_open(alice, model_file, two_face_jpeg):
    async def run():
        comm = await connect(alice)
        await comm.send_to(bytes_data=b"not a jpeg")
        bad = json.loads(await comm.receive_from(timeout=10))
        await comm.send_to(bytes_data=two_face_jpeg)
        good = json.loads(await comm.receive_from(timeout=10))
        await comm.disconnect()
        return bad, good

    bad, good = asyncio.run(run())
    assert bad["type"] == "error" and bad["error"] == "not_an_image"
    assert good["type"] == "prediction"


@pytest.mark.django_db(transaction=True)
def test_bad_text_messages_get_a_bad_message_reply_and_the_socket_stays_open(alice, model_file, two_face_jpeg):
    async def run():
        comm = await connect(alice)
        replies = []
        for text in ("hello{", "[1, 2]", '"ping"', " ", '{"type": "subscribe"}', '{"kind": "ping"}'):
            await comm.send_to(text_data=text)
            replies.append(json.loads(await comm.receive_from(timeout=5)))
        await comm.send_to(text_data='{"type": "ping"}')
        pong = json.loads(await comm.receive_from(timeout=5))
        await comm.send_to(bytes_data=two_face_jpeg)
        good = json.loads(await comm.receive_from(timeout=10))
        await comm.disconnect()
        return replies, pong, good

    replies, pong, good = asyncio.run(run())
    for reply in replies:
        assert reply["type"] == "error" and reply["error"] == "bad_message", reply
        assert '{"type": "ping"}' in reply["message"]
    assert "'subscribe'" in replies[4]["message"]
    assert pong == {"type": "pong"}
    assert good["type"] == "prediction"


@pytest.mark.django_db(transaction=True)
def test_oversized_frames_and_text_get_too_large_from_the_setting(alice, model_file, two_face_jpeg, settings):
    settings.FERWEB_MAX_FRAME_BYTES = len(two_face_jpeg) - 1

    async def run():
        comm = await connect(alice)
        await comm.send_to(bytes_data=two_face_jpeg)
        frame = json.loads(await comm.receive_from(timeout=5))
        await comm.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * len(two_face_jpeg)}))
        text = json.loads(await comm.receive_from(timeout=5))
        await comm.send_to(text_data='{"type": "ping"}')
        pong = json.loads(await comm.receive_from(timeout=5))
        await comm.disconnect()
        return frame, text, pong

    frame, text, pong = asyncio.run(run())
    assert frame["type"] == "error" and frame["error"] == "too_large"
    assert text["type"] == "error" and text["error"] == "too_large"
    assert pong == {"type": "pong"}


@pytest.mark.django_db(transaction=True)
def test_a_pixel_bomb_frame_is_refused_from_its_header(alice, model_file):
    from inference.synthetic import png_bomb

    bomb = png_bomb(30000, 30000)

    async def run():
        comm = await connect(alice)
        await comm.send_to(bytes_data=bomb)
        reply = json.loads(await comm.receive_from(timeout=5))
        await comm.disconnect()
        return reply

    reply = asyncio.run(run())
    assert reply["type"] == "error" and reply["error"] == "too_many_pixels"


@pytest.mark.django_db(transaction=True)
def test_anonymous_webcam_sockets_are_closed(model_file):
    async def run():
        comm = communicator(AnonymousUser())
        connected, code = await comm.connect()
        return connected, code

    assert asyncio.run(run()) == (False, 4401)


def test_the_pages_need_a_login_and_render(client, alice):
    assert client.get("/webcam/").status_code == 302
    client.force_login(alice)
    for url in ("/webcam/", "/predict/", "/jobs/"):
        response = client.get(url)
        assert response.status_code == 200
    assert b'id="fer-classes"' in client.get("/webcam/").content


def fake_camera_faces() -> tuple[np.ndarray, str]:
    """A FER2013 face the detector finds, upscaled, when the training zip is present; else a drawn one.

    The suite must also pass from a clean clone, where the zip is not around.
    """
    from fercore.faces import FaceDetector

    if FER_ZIP.exists():
        from inference.synthetic import fer_faces

        detector = FaceDetector(backend=settings.FERWEB_FACE_DETECTOR)
        for _, face in fer_faces(40, seed=3):
            big = upscale(face, 240)
            frame = clutter(seed=2)
            place(frame, big, 200, 120)
            if detector.detect(frame):
                return big, "fer2013"
    return draw_face(240, seed=1), "drawn"


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 15):
    """Raw YUV 4:2:0 frames, the format Chromium's fake capture device plays in a loop."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as out:
        out.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420jpeg\n".encode())
        for frame in frames:
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(frame, cv2.COLOR_BGR2YUV_I420).tobytes())


def fake_camera_page(browser_factory, tmp_path):
    """A page in a Chromium whose camera is a short video of one face moving over clutter."""
    face, _ = fake_camera_faces()
    frames = []
    for i in range(10):
        frame = clutter(seed=2)
        place(frame, face, 200 + i, 120)
        frames.append(frame)
    video = tmp_path / "camera.y4m"
    write_y4m(video, frames)
    browser = browser_factory(extra_args=[
        "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
    ])
    page = browser.new_page()
    page.set_default_timeout(30_000)
    return page


@pytest.mark.browser
def test_the_webcam_page_labels_the_face_the_fake_camera_shows(served_model, live_asgi, browser_factory, tmp_path):
    page = fake_camera_page(browser_factory, tmp_path)
    signup(page, live_asgi.url, "webcamuser")
    page.goto(f"{live_asgi.url}/webcam/")
    label = page.locator("[data-face-label]").first
    try:
        label.wait_for()
    except Exception:
        raise AssertionError(f"no labelled face; status: {page.locator('#webcam-status').inner_text()!r}")
    assert label.get_attribute("data-face-label") in CLASSES
    assert label.inner_text() == label.get_attribute("data-face-label")
    page.wait_for_function("document.getElementById('fps').textContent !== '–'")
    assert page.locator("#webcam-status").get_attribute("data-kind") == "ok"

    # Nothing is kept until the user asks: then the face goes to a labeling set of theirs.
    from ferweb.labeling.models import LabelingSet

    assert not LabelingSet.objects.exists()
    page.click("#save-faces")
    page.wait_for_selector("#save-status a")
    assert page.inner_text("#save-status").startswith("Saved 1 face to labeling set")
    saved = LabelingSet.objects.get()
    assert saved.owner.username == "webcamuser" and saved.photos_total == 1
