"""Reviewing faces through the API: confirm, correct, skip, bulk accept, create a dataset; who may see what."""
import cv2
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fercore.classes import CLASSES
from ferweb.datasets.models import Dataset
from ferweb.datasets.selectors import dataset_arrays
from ferweb.labeling import services
from ferweb.labeling.models import LabelingFace, LabelingSet


@pytest.fixture
def reviewed_set(alice, model_file, photos):
    """Alice's set of four faces, processed in this process (the worker path has its own test)."""
    files = [SimpleUploadedFile(name, photos[name][0]) for name in ("one.jpg", "two.png", "turned.jpg")]
    labeling_set = services.labeling_set_create(owner=alice, name="Team photos", uploads=files)
    assert services.labeling_jobs.claim(labeling_set.pk, worker="test@host")
    labeling_set = services.labeling_process(set_id=labeling_set.pk)
    assert labeling_set.status == LabelingSet.Status.READY and labeling_set.faces.count() == 4
    return labeling_set


def face_ids(client, set_id, status=None):
    query = f"?status={status}" if status else ""
    body = client.get(f"/api/labeling/sets/{set_id}/faces/{query}").json()
    return [face["id"] for face in body["results"]]


def test_a_person_confirms_corrects_and_skips_faces(alice_api, reviewed_set):
    first, second, third, fourth = face_ids(alice_api, reviewed_set.pk)
    proposed = LabelingFace.objects.get(pk=third).proposed_class

    corrected = alice_api.patch(f"/api/labeling/faces/{first}/", {"label": "happy"}, format="json")
    assert corrected.status_code == 200, corrected.content
    assert corrected.json()["face"]["status"] == "confirmed" and corrected.json()["face"]["confirmed_label"] == "happy"
    assert corrected.json()["class_counts"]["happy"] == 1

    skipped = alice_api.patch(f"/api/labeling/faces/{second}/", {"status": "skipped"}, format="json").json()
    assert skipped["face"]["status"] == "skipped" and skipped["face"]["confirmed_label"] is None

    accepted = alice_api.patch(f"/api/labeling/faces/{third}/", {"status": "confirmed"}, format="json").json()
    assert accepted["face"]["confirmed_label"] == proposed
    assert accepted["counts"] == {"pending": 1, "confirmed": 2, "skipped": 1, "rejected": 0, "all": 4}

    # A correction after a confirmation wins; a reset puts the face back in the queue.
    assert alice_api.patch(f"/api/labeling/faces/{first}/", {"label": "sad"}, format="json").json()["face"]["confirmed_label"] == "sad"
    reset = alice_api.patch(f"/api/labeling/faces/{second}/", {"status": "pending"}, format="json").json()
    assert reset["face"]["status"] == "pending"
    assert face_ids(alice_api, reviewed_set.pk, "pending") == [second, fourth]
    assert face_ids(alice_api, reviewed_set.pk, "confirmed") == [first, third]

    bad_label = alice_api.patch(f"/api/labeling/faces/{fourth}/", {"label": "contempt"}, format="json")
    assert bad_label.status_code == 400
    assert bad_label.json()["detail"] == f"Unknown label 'contempt': use one of {', '.join(CLASSES)}."
    bad_status = alice_api.patch(f"/api/labeling/faces/{fourth}/", {"status": "done"}, format="json")
    assert bad_status.status_code == 400 and "pending, confirmed, skipped" in bad_status.json()["detail"]
    assert alice_api.patch(f"/api/labeling/faces/{fourth}/", {}, format="json").status_code == 400
    bad_filter = alice_api.get(f"/api/labeling/sets/{reviewed_set.pk}/faces/?status=done")
    assert bad_filter.status_code == 400 and "pending, confirmed, skipped" in bad_filter.json()["detail"]


def test_accept_all_proposals_above_a_probability(alice_api, reviewed_set):
    faces = list(reviewed_set.faces.order_by("-proposed_probability"))
    cut = faces[1].proposed_probability  # the two most confident faces reach it
    alice_api.patch(f"/api/labeling/faces/{faces[0].pk}/", {"status": "skipped"}, format="json")

    response = alice_api.post(f"/api/labeling/sets/{reviewed_set.pk}/accept/", {"min_probability": cut}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["accepted"] == 1  # the skipped face stays skipped
    faces[1].refresh_from_db()
    assert faces[1].status == "confirmed" and faces[1].confirmed_label == faces[1].proposed_label
    assert body["class_counts"][faces[1].proposed_class] == 1
    assert LabelingFace.objects.filter(labeling_set=reviewed_set, status="pending").count() == 2

    too_high = alice_api.post(f"/api/labeling/sets/{reviewed_set.pk}/accept/", {"min_probability": 90}, format="json")
    assert too_high.status_code == 400 and "between 0 and 1" in too_high.json()["detail"]


def test_confirmed_faces_become_a_dataset_training_can_load(alice_api, alice, reviewed_set):
    ids = face_ids(alice_api, reviewed_set.pk)
    nothing = alice_api.post(f"/api/labeling/sets/{reviewed_set.pk}/create-dataset/", {"name": "x"}, format="json")
    assert nothing.status_code == 400 and nothing.json()["code"] == "nothing_confirmed"

    for face_id, label in zip(ids, ["happy", "happy", "sad", "sad"]):
        alice_api.patch(f"/api/labeling/faces/{face_id}/", {"label": label}, format="json")
    response = alice_api.post(
        f"/api/labeling/sets/{reviewed_set.pk}/create-dataset/", {"name": "Team labels"}, format="json"
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["status"] == "ready" and created["num_items"] == 4 and created["url"] == f"/datasets/{created['id']}/"
    assert created["class_counts"] == {**{c: 0 for c in CLASSES}, "happy": 2, "sad": 2}
    assert created["split_counts"] == {"train": 4}

    dataset = Dataset.objects.get(pk=created["id"])
    assert dataset.owner == alice and dataset.source_format == "labeling"
    pixels, labels, splits, _ = dataset_arrays(dataset)
    assert pixels.shape == (4, 48, 48) and pixels.dtype == np.uint8
    assert [CLASSES[i] for i in labels] == ["happy", "happy", "sad", "sad"]
    assert set(splits) == {"train"}
    crops = LabelingFace.objects.filter(pk__in=ids).order_by("id")
    for row, face in zip(pixels, crops):
        assert np.array_equal(row, cv2.imdecode(np.frombuffer(bytes(face.crop_png), np.uint8), cv2.IMREAD_GRAYSCALE))
    assert list(dataset.items.values_list("source_name", flat=True)) == [f.source_name for f in crops]

    # A seeded stratified test share: half of each class, the same faces for the same seed.
    split = alice_api.post(f"/api/labeling/sets/{reviewed_set.pk}/create-dataset/",
                           {"name": "Team labels, split", "test_share": 0.5, "seed": 7}, format="json").json()
    assert split["split_counts"] == {"test": 2, "train": 2}
    by_split = Dataset.objects.get(pk=split["id"]).report["class_counts_by_split"]
    assert by_split["test"]["happy"] == by_split["test"]["sad"] == 1
    bad = alice_api.post(f"/api/labeling/sets/{reviewed_set.pk}/create-dataset/", {"test_share": 0.95}, format="json")
    assert bad.status_code == 400 and bad.json()["code"] == "bad_test_share"

    detail = alice_api.get(f"/api/labeling/sets/{reviewed_set.pk}/").json()
    assert [d["id"] for d in detail["datasets"]] == [split["id"], created["id"]]
    assert detail["class_counts"]["happy"] == 2


def test_stratified_splits_keep_every_class_in_train_and_follow_the_seed():
    labels = np.array([0] * 10 + [3] * 5 + [6])
    splits = services.stratified_splits(labels, test_share=0.2, seed=1)
    assert [(labels[splits == "test"] == c).sum() for c in (0, 3, 6)] == [2, 1, 0]
    assert np.array_equal(splits, services.stratified_splits(labels, test_share=0.2, seed=1))
    assert not np.array_equal(splits, services.stratified_splits(labels, test_share=0.2, seed=2))
    assert set(services.stratified_splits(labels, test_share=0.0, seed=1)) == {"train"}


def test_other_users_get_404_and_staff_see_everything(alice_api, bob_api, carol_api, anon_api, reviewed_set, photos):
    face = reviewed_set.faces.first()
    set_url = f"/api/labeling/sets/{reviewed_set.pk}/"
    for method, url, data in [
        ("get", set_url, None),
        ("get", f"{set_url}faces/", None),
        ("post", f"{set_url}accept/", {"min_probability": 0}),
        ("post", f"{set_url}create-dataset/", {"name": "stolen"}),
        ("get", f"/api/labeling/faces/{face.pk}/", None),
        ("patch", f"/api/labeling/faces/{face.pk}/", {"label": "angry"}),
        ("get", f"/api/labeling/faces/{face.pk}.png", None),
        ("delete", set_url, None),
    ]:
        response = getattr(bob_api, method)(url, data, format="json")
        assert response.status_code == 404, (method, url, response.status_code)
    more = bob_api.post(f"{set_url}photos/", {"files": [SimpleUploadedFile("x.jpg", photos["one.jpg"][0])]},
                        format="multipart")
    assert more.status_code == 404
    assert bob_api.get("/api/labeling/sets/").json() == []
    face.refresh_from_db()
    assert face.status == "pending" and LabelingSet.objects.filter(pk=reviewed_set.pk).exists()

    assert [s["id"] for s in carol_api.get("/api/labeling/sets/").json()] == [reviewed_set.pk]
    assert carol_api.get(set_url).json()["owner"] == "alice"
    assert carol_api.patch(f"/api/labeling/faces/{face.pk}/", {"label": "fear"}, format="json").status_code == 200

    assert anon_api.get("/api/labeling/sets/").status_code in (401, 403)
    assert anon_api.get(f"/api/labeling/faces/{face.pk}.png").status_code in (401, 403)

    assert alice_api.delete(set_url).status_code == 204
    assert not LabelingSet.objects.filter(pk=reviewed_set.pk).exists()


def test_an_empty_upload_is_refused_with_the_accepted_formats(alice_api, reviewed_set):
    for url in ("/api/labeling/sets/", f"/api/labeling/sets/{reviewed_set.pk}/photos/"):
        response = alice_api.post(url, {"name": "nothing"}, format="multipart")
        assert response.status_code == 400
        assert response.json() == {
            "detail": "Choose at least one photo (JPEG, PNG, WebP, BMP) or a zip of photos to upload.",
            "code": "no_files",
        }
    assert LabelingSet.objects.count() == 1


def test_too_many_files_in_one_upload_get_a_400_that_says_to_zip_them(alice_api):
    files = [SimpleUploadedFile(f"p{i}.jpg", b"x") for i in range(101)]
    response = alice_api.post("/api/labeling/sets/", {"files": files}, format="multipart")
    assert response.status_code == 400
    assert response.json()["code"] == "too_many_files" and "zip" in response.json()["detail"]
    assert not LabelingSet.objects.exists()
