"""Dataset versions: every change makes a version with a parent; a run's version never changes; diffs."""
import csv
import io

import numpy as np
import pytest

from fercore.classes import CLASSES
from ferweb.datasets import versions
from ferweb.datasets.models import DatasetItem, DatasetVersion
from tests.datasets.label_issue_faces import flipped_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def dataset(alice):
    return flipped_dataset(alice)[0]


def decide(client, dataset, item, **body):
    response = client.post(f"/api/datasets/{dataset.pk}/items/{item.pk}/", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def chain(client, dataset) -> list[dict]:
    response = client.get(f"/api/datasets/{dataset.pk}/versions/")
    assert response.status_code == 200
    return response.json()


def other_class(label: int) -> str:
    return CLASSES[(label + 1) % len(CLASSES)]


def test_the_import_is_version_1_sealed(alice_api, dataset):
    (first,) = chain(alice_api, dataset)
    assert first["number"] == 1 and first["parent"] is None and first["source"] == "import" and first["sealed"]
    assert first["num_items"] == dataset.num_items and len(first["content_hash"]) == 64
    assert first["summary"].startswith(f"imported {dataset.num_items:,} faces")


def test_a_relabel_makes_a_child_version_and_one_sitting_makes_one_version(alice_api, dataset):
    first, second, third = DatasetItem.objects.filter(dataset=dataset).order_by("index")[:3]
    decide(alice_api, dataset, first, label=other_class(first.label), source="review")
    newest, import_ = chain(alice_api, dataset)
    assert newest["number"] == 2 and newest["parent"] == 1 and newest["source"] == "review"
    assert newest["summary"] == f"1 relabeled {CLASSES[first.label]} -> {other_class(first.label)}"
    assert newest["content_hash"] != import_["content_hash"] and not newest["sealed"]

    decide(alice_api, dataset, second, excluded=True, source="review")
    decide(alice_api, dataset, third, label=other_class(third.label), source="review")
    versions_now = chain(alice_api, dataset)
    assert [v["number"] for v in versions_now] == [2, 1]  # the same sitting: folded into version 2
    assert versions_now[0]["changes"]["excluded"] == 1 and sum(versions_now[0]["changes"]["relabeled"].values()) == 2
    assert versions_now[0]["num_items"] == dataset.num_items - 1
    assert "2 relabeled" in versions_now[0]["summary"] and "1 excluded" in versions_now[0]["summary"]

    decide(alice_api, dataset, first, label=CLASSES[first.label], source="edit")  # another place: a new version
    assert [v["number"] for v in chain(alice_api, dataset)] == [3, 2, 1]
    assert chain(alice_api, dataset)[1]["sealed"] is True


def test_undoing_a_whole_sitting_leaves_the_version_it_started_from(alice_api, dataset):
    item = DatasetItem.objects.filter(dataset=dataset).first()
    decide(alice_api, dataset, item, excluded=True, source="review")
    assert len(chain(alice_api, dataset)) == 2
    decide(alice_api, dataset, item, excluded=False, source="review")
    assert [v["number"] for v in chain(alice_api, dataset)] == [1]


def test_a_runs_version_never_changes_and_later_edits_make_children(alice, alice_api, dataset):
    from training_jobs.services import run_create, run_rows

    item = DatasetItem.objects.filter(dataset=dataset, split="train").first() or DatasetItem.objects.filter(
        dataset=dataset).first()
    decide(alice_api, dataset, item, excluded=True, source="review")
    run = run_create(user=alice, dataset=dataset, config={"architecture": "fast_resnet", "epochs": 1}, queue=False)
    assert run.dataset_version.number == 2 and run.dataset_version.sealed
    rows_before, labels_before, _, ids_before = run_rows(run)
    hash_before = run.dataset_version.content_hash

    decide(alice_api, dataset, item, excluded=False, source="review")  # same place, but the version is sealed
    relabeled = DatasetItem.objects.filter(dataset=dataset).exclude(pk=item.pk).first()
    decide(alice_api, dataset, relabeled, label=other_class(relabeled.label), source="review")
    numbers = [v["number"] for v in chain(alice_api, dataset)]
    assert numbers == [3, 2, 1]
    run.refresh_from_db()
    assert run.dataset_version.number == 2 and run.dataset_version.content_hash == hash_before
    rows, labels, _, ids = run_rows(run)
    assert np.array_equal(rows, rows_before) and np.array_equal(labels, labels_before)
    assert item.pk not in ids  # still excluded in the run's version
    assert chain(alice_api, dataset)[1]["runs"] == [{"id": run.pk, "name": run.name, "status": "queued",
                                                      "accuracy": None}]
    newest = DatasetVersion.objects.get(dataset=dataset, number=3)
    assert newest.parent.number == 2 and "1 included" in newest.summary


def test_the_diff_lists_the_changed_faces(alice_api, dataset):
    first, second = DatasetItem.objects.filter(dataset=dataset).order_by("index")[:2]
    decide(alice_api, dataset, first, label=other_class(first.label), source="review")
    decide(alice_api, dataset, second, excluded=True, source="review")
    response = alice_api.get(f"/api/datasets/{dataset.pk}/versions/diff/?from=1&to=2")
    assert response.status_code == 200
    diff = response.json()
    assert diff["from"] == 1 and diff["to"] == 2 and diff["count"] == 2
    by_change = {face["change"]: face for face in diff["faces"]}
    assert by_change["relabeled"]["item"] == first.pk and by_change["relabeled"]["index"] == first.index
    assert by_change["relabeled"]["before"] == CLASSES[first.label]
    assert by_change["relabeled"]["after"] == other_class(first.label)
    assert by_change["excluded"]["item"] == second.pk
    backwards = alice_api.get(f"/api/datasets/{dataset.pk}/versions/diff/?from=2&to=1").json()
    assert backwards["changes"]["included"] == 1 and backwards["count"] == 2

    base = f"/api/datasets/{dataset.pk}/versions/diff/"
    assert alice_api.get(base + "?from=1").status_code == 400
    assert alice_api.get(base + "?from=x&to=2").json()["fields"]["from"]
    assert alice_api.get(base + "?from=1&to=9").status_code == 404


def test_another_user_sees_no_version(bob_api, dataset):
    assert bob_api.get(f"/api/datasets/{dataset.pk}/versions/").status_code == 404
    assert bob_api.get(f"/api/datasets/{dataset.pk}/versions/diff/?from=1&to=1").status_code == 404
    assert bob_api.get(f"/api/datasets/{dataset.pk}/export.csv?version=1").status_code == 404


def test_any_version_exports_with_its_own_labels(alice_api, dataset):
    item = DatasetItem.objects.filter(dataset=dataset).order_by("index").first()
    decide(alice_api, dataset, item, label=other_class(item.label))

    def emotions(version):
        response = alice_api.get(f"/api/datasets/{dataset.pk}/export.csv?version={version}")
        assert response.status_code == 200
        assert f"-v{version}.csv" in response["Content-Disposition"]
        rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
        return [int(row["emotion"]) for row in rows]

    old, new = emotions(1), emotions(2)
    assert len(old) == len(new) and sum(a != b for a, b in zip(old, new)) == 1
    assert alice_api.get(f"/api/datasets/{dataset.pk}/export.csv?version=7").status_code == 404
    assert alice_api.get(f"/api/datasets/{dataset.pk}/export.csv?version=0").status_code == 400


def test_an_admin_edit_makes_a_version(admin_client, alice, dataset):
    item = DatasetItem.objects.filter(dataset=dataset).first()
    response = admin_client.post(f"/admin/datasets/datasetitem/{item.pk}/change/", {
        "label": (item.label + 1) % len(CLASSES), "split": item.split, "excluded": "",
    })
    assert response.status_code == 302, response.content[:2000]
    newest = versions.version_head(dataset)
    assert newest.number == 2 and newest.source == "admin" and newest.created_by.is_superuser
    assert sum(newest.changes["relabeled"].values()) == 1


def test_faces_added_from_a_labeling_set_make_a_version_and_keep_the_old_ones(alice, alice_api, bob, dataset):
    from tests.datasets.test_names import labeling_set_with_confirmed_faces

    labeling_set = labeling_set_with_confirmed_faces(alice)
    url = f"/api/labeling/sets/{labeling_set.pk}/create-dataset/"
    response = alice_api.post(url, {"dataset": dataset.pk}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["id"] == dataset.pk and body["added"] == 3 and body["num_items"] == dataset.num_items + 3
    newest, first = chain(alice_api, dataset)
    assert newest["source"] == "labeling" and newest["summary"] == "3 added" and newest["parent"] == 1
    assert newest["class_counts"]["happy"] == first["class_counts"]["happy"] + 2
    old_rows = versions.version_rows(DatasetVersion.objects.get(dataset=dataset, number=1))[0]
    assert len(old_rows) == first["num_items"]  # the packed faces grew, version 1 still names its own
    diff = alice_api.get(f"/api/datasets/{dataset.pk}/versions/diff/?from=1&to=2").json()
    assert [face["change"] for face in diff["faces"]] == ["added"] * 3

    again = alice_api.post(url, {"dataset": dataset.pk}, format="json")
    assert again.status_code == 400 and again.json()["code"] == "already_added"
    bobs = labeling_set_with_confirmed_faces(bob)
    from tests.conftest import api_client_for

    refused = api_client_for(bob).post(f"/api/labeling/sets/{bobs.pk}/create-dataset/", {"dataset": dataset.pk},
                                       format="json")
    assert refused.status_code == 400 and "dataset" in refused.json()["fields"]


def test_a_dataset_with_a_chain_of_versions_deletes_with_them(alice_api, dataset, django_capture_on_commit_callbacks):
    first, second = DatasetItem.objects.filter(dataset=dataset).order_by("index")[:2]
    decide(alice_api, dataset, first, excluded=True, source="review")
    decide(alice_api, dataset, second, excluded=True, source="confusion")
    assert len(chain(alice_api, dataset)) == 3
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.delete(f"/api/datasets/{dataset.pk}/").status_code == 204
    assert not DatasetVersion.objects.exists() and not dataset.storage_dir.exists()


def test_the_mean_faces_follow_a_relabel(alice_api, dataset):
    """Edits drop the stored mean faces; the next request computes them from the labels as they are now."""
    from ferweb.datasets.selectors import dataset_arrays

    item = DatasetItem.objects.filter(dataset=dataset, excluded=False).first()
    new = other_class(item.label)
    assert alice_api.get(f"/api/datasets/{dataset.pk}/mean/{new}.png").status_code == 200
    decide(alice_api, dataset, item, label=new, source="review")
    assert not dataset.mean_faces_path.exists()

    from PIL import Image

    shown = np.asarray(Image.open(io.BytesIO(alice_api.get(f"/api/datasets/{dataset.pk}/mean/{new}.png").content)))
    pixels, labels, _, _ = dataset_arrays(dataset)
    expected = np.rint(pixels[labels == CLASSES.index(new)].astype(np.float64).mean(axis=0))
    assert np.abs(shown.astype(int) - expected.astype(int)).max() <= 1
