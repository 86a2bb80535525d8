"""The label-error finder's API: start a scan with a model, read the flagged faces, decide on them.

Scans run eagerly in this process here (the worker test runs one on a real worker); the shipped
default model is the band model (label_issue_faces), which names every face's class for sure.
"""
import numpy as np
import pytest
from django.conf import settings as django_settings

from fercore.classes import CLASSES
from ferweb.datasets.models import DatasetItem, LabelIssueScan
from tests.datasets.label_issue_faces import band_model, flipped_dataset

pytestmark = pytest.mark.django_db


@pytest.fixture
def band_default(tmp_path, settings):
    settings.FERWEB_DEFAULT_MODEL = band_model(tmp_path / "models" / "default.onnx")
    return settings.FERWEB_DEFAULT_MODEL


@pytest.fixture
def scan_now(django_capture_on_commit_callbacks):
    """POST a scan and run it the way the queue would, in this process."""
    from ferweb.celery import app

    def post(client, dataset_id, **body):
        app.conf.task_always_eager = True
        try:
            with django_capture_on_commit_callbacks(execute=True):
                return client.post(f"/api/datasets/{dataset_id}/label-issues/", body, format="json")
        finally:
            app.conf.task_always_eager = False

    return post


def version_of(owner, version: str, **fields):
    """A model version of `owner` (its file: the band model, in the media folder as uploads are)."""
    from inference.models import ModelVersion

    band_model(django_settings.MEDIA_ROOT / "models" / f"{version}.onnx", version=version)
    return ModelVersion.objects.create(owner=owner, onnx_file=f"models/{version}.onnx", architecture="band-reader",
                                       version=version, **fields)


def browser_of(user):
    """A session client, as a browser signed in as `user` (the pages need a session, not a token)."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def flipped(alice):
    return flipped_dataset(alice)


def test_the_default_model_finds_every_injected_flip(alice_api, band_default, flipped, scan_now):
    dataset, truth, flips, ids = flipped
    started = scan_now(alice_api, dataset.pk, model="default")
    assert started.status_code == 202, started.content
    assert started.json()["model"] == {"choice": "default", "version_id": None, "version": "default"}

    state = alice_api.get(f"/api/datasets/{dataset.pk}/label-issues/").json()
    assert state["status"] == "succeeded" and state["progress"] == 100
    assert state["in_sample"] is False and state["warning"] == ""
    assert state["counts"]["scored"] == len(truth) and state["counts"]["flagged"] == len(flips)
    by_item = {issue["item"]: issue for issue in state["issues"]}
    assert set(by_item) == {ids[i] for i in flips}  # every flip found, nothing else flagged
    for i in flips:
        issue = by_item[ids[i]]
        assert issue["suggested"] == CLASSES[truth[i]] and issue["given"] != issue["suggested"]
        assert issue["source_name"] == f"face_{i:03d}.png" and issue["index"] == i
        assert issue["score"] > 0.9 and issue["label"] == issue["given"] and issue["excluded"] is False
    scores = [issue["score"] for issue in state["issues"]]
    assert scores == sorted(scores, reverse=True)
    assert len(alice_api.get(f"/api/datasets/{dataset.pk}/label-issues/?limit=3").json()["issues"]) == 3


def test_a_dataset_never_scanned_says_so(alice_api, flipped):
    state = alice_api.get(f"/api/datasets/{flipped[0].pk}/label-issues/").json()
    assert state["status"] == "none" and state["issues"] == [] and state["model"] is None and state["counts"] is None


def test_another_users_dataset_is_not_found(alice_api, bob, bob_api, band_default, flipped, scan_now):
    dataset, _, _, ids = flipped
    scan_now(alice_api, dataset.pk, model="default")
    for response in (
        bob_api.get(f"/api/datasets/{dataset.pk}/label-issues/"),
        bob_api.post(f"/api/datasets/{dataset.pk}/label-issues/", {"model": "default"}, format="json"),
        bob_api.post(f"/api/datasets/{dataset.pk}/items/{ids[0]}/", {"excluded": True}, format="json"),
        browser_of(bob).get(f"/datasets/{dataset.pk}/label-issues/"),
    ):
        assert response.status_code == 404
    assert not DatasetItem.objects.filter(pk=ids[0], excluded=True).exists()


def test_one_scan_at_a_time_and_a_finished_one_is_replaced(alice_api, band_default, flipped, scan_now):
    dataset = flipped[0]
    queued = alice_api.post(f"/api/datasets/{dataset.pk}/label-issues/", {"model": "default"}, format="json")
    assert queued.status_code == 202 and queued.json()["status"] == "queued"  # no worker here: it waits
    again = alice_api.post(f"/api/datasets/{dataset.pk}/label-issues/", {"model": "active"}, format="json")
    assert again.status_code == 409 and again.json()["code"] == "scan_running"
    LabelIssueScan.objects.filter(pk=queued.json()["id"]).update(status="cancelled")
    replaced = scan_now(alice_api, dataset.pk, model="active")
    assert replaced.status_code == 202 and replaced.json()["id"] != queued.json()["id"]
    assert list(LabelIssueScan.objects.filter(dataset=dataset).values_list("status", flat=True)) == ["succeeded"]


def test_models_it_cannot_use_are_refused_with_the_choices(alice_api, bob, band_default, flipped, tmp_path):
    dataset = flipped[0]
    url = f"/api/datasets/{dataset.pk}/label-issues/"
    bobs = version_of(bob, "b")
    for model in ("newest", bobs.pk, 10**9):
        refused = alice_api.post(url, {"model": model}, format="json")
        assert refused.status_code == 400 and refused.json()["code"] == "invalid"
        assert '"default", "active"' in refused.json()["detail"]
    assert not LabelIssueScan.objects.exists()


def test_a_model_trained_on_these_faces_is_flagged_in_sample(alice, alice_api, band_default, flipped, scan_now):
    from training_jobs.models import TrainingRun

    dataset = flipped[0]
    run = TrainingRun.objects.create(owner=alice, dataset=dataset, architecture="light_residual", optimizer="nadam",
                                     status="succeeded")
    own = version_of(alice, "mine", run_id=run.pk)
    other = version_of(alice, "elsewhere")
    state = scan_now(alice_api, dataset.pk, model=own.pk).json()
    assert state["in_sample"] is True and "trained on these faces" in state["warning"]
    assert state["model"] == {"choice": str(own.pk), "version_id": own.pk, "version": "mine"}
    assert "trained on these faces" in browser_of(alice).get(f"/datasets/{dataset.pk}/label-issues/").content.decode()
    state = scan_now(alice_api, dataset.pk, model=str(other.pk)).json()
    assert state["in_sample"] is False and state["warning"] == ""


def test_decisions_relabel_exclude_and_undo(alice_api, flipped):
    dataset, _, _, ids = flipped
    url = f"/api/datasets/{dataset.pk}/items/{ids[3]}/"
    before = DatasetItem.objects.get(pk=ids[3])
    relabeled = alice_api.post(url, {"label": "fear"}, format="json")
    assert relabeled.status_code == 200, relabeled.content
    assert relabeled.json() == {"item": ids[3], "index": 3, "source_name": "face_003.png", "label": "fear",
                                "split": "train", "excluded": False}
    assert alice_api.post(url, {"excluded": True}, format="json").json()["excluded"] is True
    dataset.refresh_from_db()
    assert dataset.num_items == len(ids) - 1  # counts follow
    undone = alice_api.post(url, {"label": CLASSES[before.label], "excluded": False}, format="json").json()
    assert undone["label"] == CLASSES[before.label] and undone["excluded"] is False
    assert alice_api.post(url, {}, format="json").status_code == 400
    assert alice_api.post(url, {"label": "bored"}, format="json").status_code == 400
    assert alice_api.post(f"/api/datasets/{dataset.pk}/items/{10**9}/", {"excluded": True},
                          format="json").status_code == 404


def test_the_dataset_page_links_to_the_finder(alice, alice_api, band_default, flipped, scan_now):
    dataset = flipped[0]
    page = browser_of(alice).get(f"/datasets/{dataset.pk}/").content.decode()
    assert f'href="/datasets/{dataset.pk}/label-issues/"' in page
    scan_now(alice_api, dataset.pk, model="default")
    assert "10 faces flagged" in browser_of(alice).get(f"/datasets/{dataset.pk}/").content.decode()


def test_the_default_model_missing_fails_the_scan_with_a_reason(alice_api, flipped, scan_now, tmp_path):
    django_settings.FERWEB_DEFAULT_MODEL = tmp_path / "none.onnx"
    scan_now(alice_api, flipped[0].pk, model="default")
    state = alice_api.get(f"/api/datasets/{flipped[0].pk}/label-issues/").json()
    assert state["status"] == "failed" and state["error"] == "no_model" and "does not exist" in state["human_readable_error"]


def test_every_answer_matches_the_schema(alice, alice_api, band_default, flipped, scan_now):
    from tests.test_api_shapes import check
    from drf_spectacular.generators import SchemaGenerator

    openapi = SchemaGenerator().get_schema(request=None, public=True)
    dataset, _, _, ids = flipped
    path, item_path = "/api/datasets/{id}/label-issues/", "/api/datasets/{id}/items/{item}/"
    url = f"/api/datasets/{dataset.pk}/label-issues/"
    assert check(openapi, alice_api.get(url), path)["status"] == "none"
    queued = alice_api.post(url, {"model": "active"}, format="json")
    assert check(openapi, queued, path, "post")["status"] == "queued"
    assert check(openapi, alice_api.post(url, {"model": "active"}, format="json"), path, "post")["code"] == "scan_running"
    LabelIssueScan.objects.update(status="failed")
    assert check(openapi, alice_api.get(url), path)["status"] == "failed"
    assert check(openapi, scan_now(alice_api, dataset.pk, model="default"), path, "post")["status"] == "queued"
    assert check(openapi, alice_api.get(url), path)["issues"]
    cross = check(openapi, alice_api.post(url, {"model": "cross-validation", "folds": 3}, format="json"), path, "post")
    assert (cross["status"], cross["folds"], cross["model"]["choice"]) == ("queued", 3, "cross-validation")
    assert check(openapi, alice_api.get(url), path)["estimated_seconds"] == cross["estimated_seconds"] > 0
    estimate = alice_api.post(f"{url}estimate/", {"folds": 4}, format="json")
    assert check(openapi, estimate, path + "estimate/", "post")["estimated_seconds"] > 0
    assert check(openapi, alice_api.post(f"{url}estimate/", {"folds": 1}, format="json"), path + "estimate/",
                 "post")["fields"]["folds"]
    decided = alice_api.post(f"/api/datasets/{dataset.pk}/items/{ids[0]}/", {"label": "sad"}, format="json")
    assert check(openapi, decided, item_path, "post")["label"] == "sad"


def test_the_shipped_model_is_in_sample_on_the_faces_its_card_says_it_trained_on(alice_api, band_default, flipped,
                                                                                   scan_now):
    import json
    from pathlib import Path

    dataset = flipped[0]
    card = Path(band_default).with_suffix(".json")
    card.write_text(json.dumps({"version": "band", "data": {"class_counts": {"happy": 1, "sad": 1}}}))
    assert scan_now(alice_api, dataset.pk, model="default").json()["in_sample"] is False

    card.write_text(json.dumps({"version": "band", "data": {"class_counts": dataset.class_counts}}))
    state = scan_now(alice_api, dataset.pk, model="default").json()
    assert state["in_sample"] is True and "trained on these faces" in state["warning"]
    assert scan_now(alice_api, dataset.pk, model="active").json()["in_sample"] is True


def test_the_shipped_models_face_prints_tell_when_part_of_a_dataset_trained_it(alice, alice_api, client, band_default,
                                                                                 flipped, scan_now):
    """With the prints of its training faces beside it, the shipped model is in-sample on any dataset of
    which at least a tenth are among them, whatever its class counts."""
    import json
    from pathlib import Path

    from fercore.face_prints import save_prints

    dataset = flipped[0]
    pixels = np.load(dataset.pixels_path)
    card = Path(band_default).with_suffix(".json")
    card.write_text(json.dumps({"version": "band", "data": {"class_counts": dataset.class_counts}}))
    prints = Path(band_default).with_suffix(".faces.npy")
    save_prints(pixels[: len(pixels) // 20], prints)  # 5% of these faces: too few to matter
    assert scan_now(alice_api, dataset.pk, model="default").json()["in_sample"] is False  # the prints decide

    save_prints(np.concatenate([pixels[: len(pixels) // 5], 255 - pixels[:50]]), prints)  # 20%, and others
    state = scan_now(alice_api, dataset.pk, model="default").json()
    assert state["in_sample"] is True and "trained on these faces" in state["warning"]
    client.force_login(alice)
    page = client.get(f"/datasets/{dataset.pk}/label-issues/").content.decode()
    finder = json.loads(page.split('id="finder-data" type="application/json">')[1].split("</script>")[0])
    assert finder["default_in_sample"] is True and finder["active_in_sample"] is True
