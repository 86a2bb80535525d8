"""The Django admin: thumbnails, filters, bulk relabel / move / exclude, read-only once trained on."""
import pytest
from django.test import Client

from fercore.classes import CLASSES
from ferweb.datasets.models import Dataset, DatasetItem
from ferweb.datasets.selectors import dataset_arrays
from ferweb.datasets.services import dataset_lock

from .conftest import class_tree, zip_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(carol):
    client = Client()
    client.force_login(carol)
    return client


@pytest.fixture
def dataset(alice_api, upload):
    files = class_tree(per_class=3, classes=("happy", "sad"), splits=("train", "test"))
    response = upload(alice_api, "admin faces", zip_bytes(files))
    return Dataset.objects.get(pk=response.json()["id"])


def act(client, action, items):
    return client.post(
        "/admin/datasets/datasetitem/",
        {"action": action, "_selected_action": [item.pk for item in items]},
        follow=True,
    )


def test_the_item_list_shows_thumbnails_and_filters_by_class_split_flag_and_exclusion(staff, dataset):
    page = staff.get("/admin/datasets/datasetitem/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f'src="/api/datasets/{dataset.pk}/items/0.png"' in html
    assert html.count("/items/") == 12
    happy = CLASSES.index("happy")
    assert staff.get(f"/admin/datasets/datasetitem/?label__exact={happy}").context["cl"].result_count == 6
    assert staff.get("/admin/datasets/datasetitem/?split__exact=test").context["cl"].result_count == 6
    assert staff.get("/admin/datasets/datasetitem/?flag=blank").context["cl"].result_count == 0
    assert staff.get("/admin/datasets/datasetitem/?flag=none").context["cl"].result_count == 12
    assert staff.get("/admin/datasets/datasetitem/?excluded__exact=1").context["cl"].result_count == 0
    found = staff.get("/admin/datasets/datasetitem/?q=test/sad").context["cl"].result_count
    assert found == 3
    thumb = staff.get(f"/api/datasets/{dataset.pk}/items/0.png")
    assert thumb.status_code == 200 and thumb["Content-Type"] == "image/png"


def test_bulk_actions_relabel_move_and_exclude_and_the_counts_follow(staff, dataset):
    items = list(DatasetItem.objects.filter(dataset=dataset, label=CLASSES.index("sad"), split="train"))
    response = act(staff, "relabel_to_angry", items[:2])
    assert "2 faces relabelled angry; counts recomputed." in response.content.decode()
    response = act(staff, "move_to_val", items[2:])
    assert "1 faces moved to val" in response.content.decode()
    happy_test = list(DatasetItem.objects.filter(dataset=dataset, label=CLASSES.index("happy"), split="test"))
    act(staff, "exclude_items", happy_test)

    dataset.refresh_from_db()
    assert dataset.class_counts == {**{name: 0 for name in CLASSES}, "angry": 2, "happy": 3, "sad": 4}
    assert dataset.split_counts == {"test": 3, "train": 5, "val": 1}
    assert dataset.num_items == 9 and dataset.report["excluded"] == 3
    pixels, labels, splits, ids = dataset_arrays(dataset)
    assert len(pixels) == 9 and set(ids).isdisjoint(item.pk for item in happy_test)
    assert (labels == CLASSES.index("angry")).sum() == 2 and list(splits).count("val") == 1

    act(staff, "include_items", happy_test)
    dataset.refresh_from_db()
    assert dataset.num_items == 12 and dataset.class_counts["happy"] == 6


def test_the_dataset_page_shows_class_counts_and_mean_faces(staff, dataset):
    html = staff.get(f"/admin/datasets/dataset/{dataset.pk}/change/").content.decode()
    assert "<tr><td>happy</td><td style='text-align:right'>6</td></tr>" in html
    assert f"/api/datasets/{dataset.pk}/mean/happy.png" in html


def test_on_a_dataset_a_run_trained_on_admin_edits_make_a_new_version(staff, dataset):
    from ferweb.datasets import versions

    dataset_lock(dataset=dataset)
    trained = versions.version_seal(dataset)  # what run_create does
    items = list(DatasetItem.objects.filter(dataset=dataset)[:3])
    response = act(staff, "relabel_to_fear", items)
    assert "3 faces relabelled fear; counts recomputed. The newest version of the dataset records the change." in response.content.decode()
    newest = versions.version_head(dataset)
    assert newest.number == 2 and newest.parent == trained and newest.source == "admin"
    assert sum(newest.changes["relabeled"].values()) == 3
    assert not (versions.load_state(trained).labels == CLASSES.index("fear")).any()  # the run's version is as it was

    change = staff.get(f"/admin/datasets/datasetitem/{items[0].pk}/change/").content.decode()
    assert 'name="label"' in change
    history = staff.get("/admin/datasets/datasetversion/").content.decode()
    assert "3 relabeled" in history
    response = staff.post(f"/admin/datasets/dataset/{dataset.pk}/delete/", {"post": "yes"})
    assert response.status_code == 403  # runs keep it (the owner's delete archives it)
    assert Dataset.objects.filter(pk=dataset.pk).exists()



def test_only_staff_reach_the_admin(alice, dataset):
    client = Client()
    client.force_login(alice)
    response = client.get("/admin/datasets/datasetitem/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
