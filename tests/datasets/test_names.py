"""One name, one dataset in a person's lists: a typed name that is taken is refused at the name
field; a name made up from the file (or the labeling set) is made unique instead."""
import cv2
import numpy as np
import pytest

from ferweb.datasets.models import Dataset
from ferweb.labeling.models import LabelingFace, LabelingSet

from .conftest import class_tree, zip_bytes

pytestmark = pytest.mark.django_db


def test_an_upload_with_a_name_already_taken_is_refused_at_the_name_field(alice_api, bob_api, upload):
    first = upload(alice_api, "fer2013-train", zip_bytes(class_tree(per_class=1)))
    assert first.status_code == 201
    again = upload(alice_api, " fer2013-train ", zip_bytes(class_tree(per_class=1)))
    assert again.status_code == 400
    message = f'You already have a dataset named "fer2013-train" (#{first.json()["id"]}): choose another name.'
    assert again.json() == {"detail": message, "code": "name_taken", "fields": {"name": [message]}}
    assert Dataset.objects.filter(owner__username="alice").count() == 1
    # Another user's names are theirs.
    assert upload(bob_api, "fer2013-train", zip_bytes(class_tree(per_class=1))).status_code == 201


def test_without_a_name_the_file_name_is_used_and_made_unique(alice_api, upload):
    names = [upload(alice_api, "", zip_bytes(class_tree(per_class=1)), filename="faces.zip").json()["id"]
             for _ in range(3)]
    assert [Dataset.objects.get(pk=pk).name for pk in names] == ["faces", "faces (2)", "faces (3)"]


def test_an_archived_dataset_leaves_its_name_free(alice, alice_api, upload):
    from tests.training_web.conftest import make_ready_dataset
    from tests.training_web.test_charts import finished_run, occlusion_item

    old = make_ready_dataset(alice, per_class=2, name="faces")
    finished_run(alice, old, [1.0], [occlusion_item("happy", 0.01)])
    assert alice_api.delete(f"/api/datasets/{old.pk}/").status_code == 204  # archived: runs were trained on it
    assert upload(alice_api, "faces", zip_bytes(class_tree(per_class=1))).status_code == 201


def labeling_set_with_confirmed_faces(owner) -> LabelingSet:
    """A set of three confirmed faces (two happy, one sad), ready to become a dataset."""
    labeling_set = LabelingSet.objects.create(owner=owner, name="team photos")
    crop = cv2.imencode(".png", np.full((48, 48), 120, np.uint8))[1].tobytes()
    for label in (3, 4, 3):
        LabelingFace.objects.create(labeling_set=labeling_set, crop_png=crop, source_name="team.jpg",
                                    status=LabelingFace.Status.CONFIRMED, confirmed_label=label)
    return labeling_set


@pytest.fixture
def confirmed_set(alice):
    return labeling_set_with_confirmed_faces(alice)


def test_creating_a_dataset_twice_from_a_labeling_set_makes_one_and_refuses_the_second(alice_api, confirmed_set):
    url = f"/api/labeling/sets/{confirmed_set.pk}/create-dataset/"
    created = alice_api.post(url, {"name": "Holiday faces"}, format="json")
    assert created.status_code == 201
    again = alice_api.post(url, {"name": "Holiday faces"}, format="json")
    assert again.status_code == 400
    body = again.json()
    assert body["code"] == "name_taken" and body["fields"] == {"name": [body["detail"]]}
    assert f'"Holiday faces" (#{created.json()["id"]})' in body["detail"]
    assert list(Dataset.objects.values_list("name", flat=True)) == ["Holiday faces"]
    # Without a name: the set's, made unique.
    names = [alice_api.post(url, {"name": ""}, format="json").json()["name"] for _ in range(2)]
    assert names == ["team photos (labeled)", "team photos (labeled) (2)"]


def test_every_dataset_list_shows_the_id(alice, alice_api, confirmed_set, client):
    made = alice_api.post(f"/api/labeling/sets/{confirmed_set.pk}/create-dataset/", {"name": "mine"},
                          format="json").json()
    client.force_login(alice)
    assert f'<span class="muted">#{made["id"]}</span> mine</a>' in client.get("/datasets/").content.decode()
    detail = client.get(f"/labeling/{confirmed_set.pk}/").content.decode()
    assert f'<span class="muted">#{made["id"]}</span> <a href="/datasets/{made["id"]}/">mine</a>' in detail
