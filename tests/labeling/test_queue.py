"""The review queue: uncertainty-first orders, the proposed-class filter, reject, undo, and the page that drives them."""
import re
import time

import cv2
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from fercore.classes import CLASSES
from ferweb.datasets.models import Dataset
from ferweb.labeling.models import LabelingFace, LabelingSet, entropy_of

from ..conftest import signup

CROP = cv2.imencode(".png", np.full((48, 48), 128, np.uint8))[1].tobytes()


def spread(top: dict) -> dict:
    """{class: p} with the given classes and the rest of the probability shared by the other classes."""
    rest = [c for c in CLASSES if c not in top]
    share = (1.0 - sum(top.values())) / len(rest)
    return {c: top.get(c, share) for c in CLASSES}


# name -> probabilities; `least` is sure of nothing but torn between two classes (lowest top probability),
# `flat` has a higher top probability but spreads the rest evenly (highest entropy).
FACES = {
    "sure.jpg": spread({"happy": 0.90}),
    "torn.jpg": spread({"sad": 0.40, "fear": 0.38}),
    "flat.jpg": spread({"fear": 0.45}),
    "fair.jpg": spread({"happy": 0.70}),
    "unscored.jpg": {},  # no model answered: no proposal
}
ORDERS = {
    "upload": ["sure.jpg", "torn.jpg", "flat.jpg", "fair.jpg", "unscored.jpg"],
    "least_confident": ["torn.jpg", "flat.jpg", "fair.jpg", "sure.jpg", "unscored.jpg"],
    "entropy": ["flat.jpg", "torn.jpg", "fair.jpg", "sure.jpg", "unscored.jpg"],
    "most_confident": ["sure.jpg", "fair.jpg", "flat.jpg", "torn.jpg", "unscored.jpg"],
}


def make_set(owner, name="queue photos") -> LabelingSet:
    """A set of the FACES, stored as processing stores them (proposal = the most probable class)."""
    labeling_set = LabelingSet.objects.create(owner=owner, name=name)
    for source, probabilities in FACES.items():
        best = max(probabilities, key=probabilities.get) if probabilities else None
        LabelingFace.objects.create(
            labeling_set=labeling_set, crop_png=CROP, source_name=source, probabilities=probabilities,
            proposed_label=CLASSES.index(best) if best else None,
            proposed_probability=probabilities[best] if best else None, model_version="test",
        )
    return labeling_set


@pytest.fixture
def queue_set(alice):
    return make_set(alice)


def names(client, set_id, query=""):
    response = client.get(f"/api/labeling/sets/{set_id}/faces/{query}")
    assert response.status_code == 200, response.content
    return [face["source_name"] for face in response.json()["results"]]


def face_id(labeling_set, source):
    return LabelingFace.objects.get(labeling_set=labeling_set, source_name=source).pk


def test_entropy_is_stored_from_the_probabilities(queue_set):
    assert entropy_of({}) is None
    assert entropy_of({c: 1 / 7 for c in CLASSES}) == pytest.approx(np.log(7), abs=1e-3)
    assert entropy_of({"happy": 1.0, "sad": 0.0}) == 0.0
    stored = dict(queue_set.faces.values_list("source_name", "entropy"))
    assert stored["unscored.jpg"] is None
    assert stored["flat.jpg"] > stored["torn.jpg"] > stored["fair.jpg"] > stored["sure.jpg"] > 0


def test_processing_stores_the_entropy_of_each_proposal(alice, model_file, photos):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from ferweb.labeling import services

    upload = [SimpleUploadedFile("two.png", photos["two.png"][0])]
    labeling_set = services.labeling_set_create(owner=alice, name="two faces", uploads=upload)
    assert services.labeling_jobs.claim(labeling_set.pk, worker="test@host")
    services.labeling_process(set_id=labeling_set.pk)
    faces = list(LabelingFace.objects.filter(labeling_set=labeling_set))
    assert len(faces) == 2
    for face in faces:
        assert face.entropy == pytest.approx(entropy_of(face.probabilities), abs=1e-4) and face.entropy > 0


@pytest.mark.parametrize("order", list(ORDERS))
def test_the_queue_comes_in_each_order(alice_api, queue_set, order):
    assert names(alice_api, queue_set.pk, f"?order={order}") == ORDERS[order]


def test_the_queue_defaults_to_upload_order_and_faces_carry_their_uncertainty(alice_api, queue_set):
    body = alice_api.get(f"/api/labeling/sets/{queue_set.pk}/faces/").json()
    assert [face["source_name"] for face in body["results"]] == ORDERS["upload"]
    flat = body["results"][2]
    assert flat["proposed_label"] == "fear" and flat["proposed_probability"] == pytest.approx(0.45)
    assert flat["entropy"] == pytest.approx(entropy_of(FACES["flat.jpg"]), abs=1e-4)
    assert flat["decided_at"] is None


def test_the_queue_filters_by_proposed_class_and_status(alice_api, queue_set):
    assert names(alice_api, queue_set.pk, "?predicted=happy&order=least_confident") == ["fair.jpg", "sure.jpg"]
    assert names(alice_api, queue_set.pk, "?predicted=fear") == ["flat.jpg"]
    assert names(alice_api, queue_set.pk, "?predicted=angry") == []
    alice_api.patch(f"/api/labeling/faces/{face_id(queue_set, 'fair.jpg')}/", {"status": "rejected"}, format="json")
    assert names(alice_api, queue_set.pk, "?predicted=happy&status=pending") == ["sure.jpg"]
    assert names(alice_api, queue_set.pk, "?status=rejected") == ["fair.jpg"]
    page = alice_api.get(f"/api/labeling/sets/{queue_set.pk}/faces/?predicted=happy&limit=1").json()
    assert page["count"] == 2 and len(page["results"]) == 1

    bad_order = alice_api.get(f"/api/labeling/sets/{queue_set.pk}/faces/?order=random")
    assert bad_order.status_code == 400 and bad_order.json()["code"] == "bad_order"
    assert "upload, least_confident, entropy, most_confident" in bad_order.json()["detail"]
    bad_class = alice_api.get(f"/api/labeling/sets/{queue_set.pk}/faces/?predicted=contempt")
    assert bad_class.status_code == 400 and ", ".join(CLASSES) in bad_class.json()["detail"]


def test_a_rejected_face_stays_out_of_the_dataset_made_from_the_set(alice_api, queue_set):
    api = alice_api
    assert api.patch(f"/api/labeling/faces/{face_id(queue_set, 'sure.jpg')}/", {"status": "confirmed"},
                     format="json").status_code == 200
    api.patch(f"/api/labeling/faces/{face_id(queue_set, 'torn.jpg')}/", {"label": "fear"}, format="json")
    rejected = api.patch(f"/api/labeling/faces/{face_id(queue_set, 'flat.jpg')}/", {"status": "rejected"},
                         format="json").json()
    assert rejected["face"]["status"] == "rejected" and rejected["face"]["confirmed_label"] is None
    assert rejected["face"]["decided_at"] is not None
    assert rejected["counts"] == {"pending": 2, "confirmed": 2, "skipped": 0, "rejected": 1, "all": 5}

    made = api.post(f"/api/labeling/sets/{queue_set.pk}/create-dataset/", {"name": "kept"}, format="json")
    assert made.status_code == 201, made.content
    assert made.json()["num_items"] == 2
    assert made.json()["class_counts"] == {**{c: 0 for c in CLASSES}, "happy": 1, "fear": 1}
    dataset = Dataset.objects.get(pk=made.json()["id"])
    assert "flat.jpg" not in set(dataset.items.values_list("source_name", flat=True))


def test_undo_takes_back_the_latest_decisions_one_by_one_whatever_they_were(alice_api, queue_set):
    url = f"/api/labeling/sets/{queue_set.pk}/undo/"
    assert alice_api.post(url).json()["code"] == "nothing_to_undo"
    decisions = [("sure.jpg", {"status": "confirmed"}), ("torn.jpg", {"label": "fear"}),
                 ("fair.jpg", {"status": "skipped"}), ("flat.jpg", {"status": "rejected"})]
    for source, body in decisions:
        assert alice_api.patch(f"/api/labeling/faces/{face_id(queue_set, source)}/", body,
                               format="json").status_code == 200
    # A correction after a confirmation is the latest decision: undo takes back the face's decision.
    alice_api.patch(f"/api/labeling/faces/{face_id(queue_set, 'sure.jpg')}/", {"label": "neutral"}, format="json")

    undone = []
    for _ in range(4):
        response = alice_api.post(url)
        assert response.status_code == 200, response.content
        body = response.json()
        assert body["face"]["status"] == "pending" and body["face"]["confirmed_label"] is None
        undone.append((body["face"]["source_name"], body["undone"]))
    assert undone == [("sure.jpg", "confirmed"), ("flat.jpg", "rejected"), ("fair.jpg", "skipped"),
                      ("torn.jpg", "confirmed")]
    assert body["counts"] == {"pending": 5, "confirmed": 0, "skipped": 0, "rejected": 0, "all": 5}
    last = alice_api.post(url)
    assert last.status_code == 400 and last.json()["code"] == "nothing_to_undo"


def test_another_users_queue_answers_404(bob_api, carol_api, queue_set):
    face = face_id(queue_set, "torn.jpg")
    assert bob_api.get(f"/api/labeling/sets/{queue_set.pk}/faces/?order=entropy").status_code == 404
    assert bob_api.get(f"/api/labeling/sets/{queue_set.pk}/faces/?predicted=sad").status_code == 404
    assert bob_api.patch(f"/api/labeling/faces/{face}/", {"status": "rejected"}, format="json").status_code == 404
    assert bob_api.post(f"/api/labeling/sets/{queue_set.pk}/undo/").status_code == 404
    assert LabelingFace.objects.get(pk=face).status == "pending"
    assert carol_api.get(f"/api/labeling/sets/{queue_set.pk}/faces/?order=entropy").status_code == 200  # staff


def test_the_page_lists_the_queue_in_the_order_and_class_asked_for(client, alice, queue_set):
    client.force_login(alice)
    html = client.get(f"/labeling/{queue_set.pk}/?order=least_confident").content.decode()
    assert re.findall(r'alt="face from ([^"]+)"', html) == ORDERS["least_confident"]
    assert '<option value="least_confident" selected>' in html
    assert 'href="?status=all&amp;order=least_confident"' in html or 'href="?status=all&order=least_confident"' in html
    assert 'id="keyboard-help"' in html and "<kbd>X</kbd>" in html and "<kbd>Z</kbd>" in html
    assert 'id="count-done">0<' in html and 'id="count-remaining">5<' in html
    happy = client.get(f"/labeling/{queue_set.pk}/?order=most_confident&predicted=happy").content.decode()
    assert re.findall(r'alt="face from ([^"]+)"', happy) == ["sure.jpg", "fair.jpg"]
    junk = client.get(f"/labeling/{queue_set.pk}/?order=nonsense&predicted=nonsense").content.decode()
    assert re.findall(r'alt="face from ([^"]+)"', junk) == ORDERS["upload"]


@pytest.fixture
def reviewer_page(live_asgi, page):
    signup(page, live_asgi.url, "quinn")
    user = get_user_model().objects.get(username="quinn")
    yield page, make_set(user, name="queue in the browser")
    connections.close_all()  # the ORM calls above ran inside Playwright's loop


@pytest.mark.browser
def test_a_reviewer_works_the_least_confident_faces_first_rejects_and_undoes(live_asgi, reviewer_page):
    page, labeling_set = reviewer_page
    page.goto(f"{live_asgi.url}/labeling/{labeling_set.pk}/")
    assert page.inner_text("#count-done") == "0" and page.inner_text("#count-remaining") == "5"
    assert page.locator("#keyboard-help kbd", has_text="X").count() == 1

    page.select_option("#id_order", "least_confident")
    page.wait_for_url(re.compile(r".*order=least_confident.*"))
    cards = page.locator("#face-grid .lface")
    assert page.locator("#face-grid .lface .source").all_inner_texts() == ORDERS["least_confident"]
    first = cards.nth(0)
    assert page.evaluate("document.activeElement.dataset.faceId") == first.get_attribute("data-face-id")

    started = time.monotonic()
    page.keyboard.press("5")  # sad for the face torn between sad and fear
    page.wait_for_function("document.getElementById('count-done').textContent === '1'")
    assert first.locator(".decision").get_attribute("data-face-label") == "sad"
    page.keyboard.press("x")  # the next face is not a usable face
    page.wait_for_function("document.querySelectorAll('#face-grid .lface.rejected').length === 1")
    assert cards.nth(1).get_attribute("data-status") == "rejected"
    assert page.inner_text("#count-done") == "2" and page.inner_text("#count-remaining") == "3"
    assert page.is_hidden("#labels-rate")  # not before three decisions

    page.keyboard.press("z")
    page.wait_for_function("document.querySelectorAll('#face-grid .lface.rejected').length === 0")
    assert cards.nth(1).get_attribute("data-status") == "pending"
    assert page.inner_text("#count-done") == "1" and page.inner_text("#count-remaining") == "4"
    assert "Undone" in page.inner_text("#review-message")
    assert LabelingFace.objects.get(pk=cards.nth(1).get_attribute("data-face-id")).status == "pending"

    # The undone face has the focus again: label it and the rest with the keys, then read the pace.
    page.keyboard.press("Enter")
    page.wait_for_function("document.getElementById('count-done').textContent === '2'")
    page.keyboard.press("4")
    page.wait_for_function("document.getElementById('count-done').textContent === '3'")
    page.keyboard.press("7")
    page.wait_for_function("document.getElementById('count-done').textContent === '4'")
    page.wait_for_selector("#labels-rate:not([hidden])")
    elapsed = time.monotonic() - started
    shown = float(page.get_attribute("#labels-per-minute", "data-rate"))
    assert shown > 0
    print(f"\nlabels per minute on the labeling page (browser test, keyboard): {shown:.1f} shown; "
          f"5 key decisions and 1 undo in {elapsed:.2f} s = {4 / elapsed * 60:.1f} labels kept per minute")

    # Decisions are stored: after a reload, Z still takes back the latest one.
    page.reload()
    page.keyboard.press("z")
    page.wait_for_function("document.getElementById('count-done').textContent === '3'")
    statuses = dict(LabelingFace.objects.filter(labeling_set=labeling_set).values_list("source_name", "status"))
    assert statuses == {"torn.jpg": "confirmed", "flat.jpg": "confirmed", "fair.jpg": "confirmed",
                        "sure.jpg": "pending", "unscored.jpg": "pending"}
