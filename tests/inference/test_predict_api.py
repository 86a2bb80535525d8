"""POST /api/predict/ with photos made here: every face, every format, every bad input."""
import base64
import time

import cv2
import numpy as np
import pytest

from fercore.classes import CLASSES
from inference.synthetic import draw_face, encode, exif_jpeg, jpeg, png_bomb, scene

from .conftest import iou


def post(client, data: bytes, name="photo.jpg", query=""):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(f"/api/predict/{query}", {"image": SimpleUploadedFile(name, data)}, format="multipart")


def assert_faces_match(faces, truths):
    assert len(faces) == len(truths)
    for face, truth in zip(faces, truths):
        assert iou(face["box"], truth) > 0.3, (face["box"], truth)
        assert face["label"] in CLASSES
        assert set(face["probabilities"]) == set(CLASSES)
        assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
        assert face["label"] == max(face["probabilities"], key=face["probabilities"].get)


def test_it_returns_every_face_left_to_right(alice_api, model_file, two_face_photo, two_face_jpeg):
    image, truths = two_face_photo
    response = post(alice_api, two_face_jpeg)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"] == "default"
    assert_faces_match(body["faces"], truths)
    assert body["faces"][0]["box"][0] < body["faces"][1]["box"][0]
    assert set(body["timing_ms"]) == {"decode", "detect", "classify", "total"}
    assert body["timing_ms"]["total"] >= body["timing_ms"]["detect"] > 0
    assert body["message"] == "2 faces found."


def test_the_shipped_model_is_named_by_its_card(alice_api, model_file, two_face_jpeg):
    import json

    model_file.with_suffix(".json").write_text(json.dumps({"version": "default-20261202-test"}))
    assert post(alice_api, two_face_jpeg).json()["model_version"] == "default-20261202-test"


@pytest.mark.parametrize("ext", [".png", ".webp", ".bmp"])
def test_it_reads_png_webp_and_bmp(alice_api, model_file, two_face_photo, ext):
    image, truths = two_face_photo
    response = post(alice_api, encode(image, ext), name=f"photo{ext}")
    assert response.status_code == 200, response.content
    assert_faces_match(response.json()["faces"], truths)


def test_it_reads_grayscale_photos(alice_api, model_file, two_face_photo):
    image, truths = two_face_photo
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    response = post(alice_api, encode(gray, ".png"), name="gray.png")
    assert response.status_code == 200
    assert_faces_match(response.json()["faces"], truths)


def test_it_applies_exif_orientation(alice_api, model_file, two_face_photo):
    image, truths = two_face_photo
    response = post(alice_api, exif_jpeg(image, 6))
    assert response.status_code == 200
    assert_faces_match(response.json()["faces"], truths)


def test_it_finds_faces_in_very_large_photos_in_original_coordinates(alice_api, model_file, two_face_photo):
    image, truths = two_face_photo
    big = cv2.resize(image, None, fx=6, fy=6, interpolation=cv2.INTER_LINEAR)  # 3840x2880
    response = post(alice_api, jpeg(big, 80))
    assert response.status_code == 200
    assert_faces_match(response.json()["faces"], [tuple(v * 6 for v in box) for box in truths])


def test_it_finds_a_small_face_in_a_large_group_photo(alice_api, model_file):
    # Four faces each a ninth of the width: too small for one 128 px pass, found by the tiled pass.
    faces = [draw_face(260, seed=s) for s in range(4)]
    image, truths = scene(faces, seed=3, height=1400, width=2400)
    response = post(alice_api, jpeg(image))
    assert response.status_code == 200
    assert_faces_match(response.json()["faces"], truths)


def test_it_flags_faces_below_the_minimum_size(alice_api, model_file, settings, two_face_jpeg):
    from inference.engine import reset_engine

    settings.FERWEB_MIN_FACE_SIZE = 400
    reset_engine()
    try:
        body = post(alice_api, two_face_jpeg).json()
    finally:
        reset_engine()
    assert len(body["faces"]) == 2 and all(face["too_small"] for face in body["faces"])
    assert "smaller than 400 px" in body["message"]


def test_a_photo_without_faces_gives_an_empty_list_and_a_message(alice_api, model_file):
    image, _ = scene([], seed=11)
    response = post(alice_api, jpeg(image))
    assert response.status_code == 200
    assert response.json()["faces"] == []
    assert response.json()["message"] == "No face found in the image."


def test_it_returns_the_annotated_image_on_request(alice_api, model_file, two_face_jpeg):
    body = post(alice_api, two_face_jpeg, query="?annotate=1").json()
    png = base64.b64decode(body["annotated_image"])
    annotated = cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_COLOR)
    assert annotated.shape == (480, 640, 3)
    x, y, w, h = body["faces"][0]["box"]
    assert tuple(annotated[y + h // 2, x]) == (80, 200, 60)  # BGR: the box's left edge is drawn in green


def test_a_non_image_is_refused_with_400(alice_api, model_file):
    response = post(alice_api, b"%PDF-1.4 not a photo at all", name="doc.pdf")
    assert response.status_code == 400
    assert response.json()["code"] == "not_an_image"
    assert "JPEG, PNG, WebP, BMP" in response.json()["detail"]


def test_a_truncated_image_is_refused_with_400(alice_api, model_file, two_face_jpeg):
    response = post(alice_api, two_face_jpeg[: len(two_face_jpeg) // 2])
    assert response.status_code == 400
    assert response.json()["code"] == "truncated"


def test_an_unsupported_format_is_refused_with_the_valid_choices(alice_api, model_file, two_face_photo):
    response = post(alice_api, encode(two_face_photo[0], ".tiff"), name="photo.tiff")
    assert response.status_code == 400
    assert "use one of JPEG, PNG, WebP, BMP" in response.json()["detail"]


@pytest.mark.parametrize("width, height", [(30000, 30000), (8000, 7000)])
def test_an_image_over_the_pixel_limit_is_refused_from_its_header(alice_api, model_file, width, height):
    bomb = png_bomb(width, height)
    started = time.perf_counter()
    response = post(alice_api, bomb, name="bomb.png")
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_pixels"
    assert "50,000,000 pixels" in response.json()["detail"]
    assert time.perf_counter() - started < 0.5


def test_the_pixel_limit_is_a_setting(alice_api, model_file, settings, two_face_jpeg):
    settings.FERWEB_MAX_IMAGE_PIXELS = 640 * 480 - 1
    response = post(alice_api, two_face_jpeg)
    assert response.status_code == 400
    assert response.json() == {
        "code": "too_many_pixels",
        "detail": "The image is 640 x 480 pixels, over the limit of 307,199 pixels: scale it down and try again.",
    }


def test_a_missing_field_is_refused_with_400(alice_api, model_file):
    response = alice_api.post("/api/predict/", {}, format="multipart")
    assert response.status_code == 400
    assert "'image'" in response.json()["detail"]


def test_an_image_over_the_size_limit_is_refused_with_413(alice_api, model_file, settings, two_face_jpeg):
    settings.FERWEB_MAX_IMAGE_BYTES = len(two_face_jpeg) - 1
    response = post(alice_api, two_face_jpeg)
    assert response.status_code == 413
    assert response.json()["code"] == "too_large"


def test_anonymous_callers_get_401(anon_api, model_file, two_face_jpeg):
    assert post(anon_api, two_face_jpeg).status_code == 401


def test_a_missing_model_is_a_clear_503_not_a_crash(alice_api, settings, tmp_path, two_face_jpeg):
    settings.FERWEB_DEFAULT_MODEL = tmp_path / "nowhere.onnx"
    response = post(alice_api, two_face_jpeg)
    assert response.status_code == 503
    assert response.json()["code"] == "no_model"
    assert "No model available" in response.json()["detail"]
