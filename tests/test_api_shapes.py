"""Every answer of the runs, datasets and labeling APIs is what the live OpenAPI schema documents for it.

Real answers, for records in the states users meet (a queued, a cancelled and a succeeded run with
metrics and a model version; a ready and a failed dataset; a labeling set with faces under review),
validated against the response schema of their route and status code. Objects are validated closed:
a field the schema does not name fails, so a field added to an answer must be added to its
serializer, and the schema follows.
"""
import cv2
import jsonschema
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.generators import SchemaGenerator

from fercore.classes import CLASSES
from ferweb.datasets.models import Dataset
from ferweb.labeling.models import LabelingFace, LabelingSet
from tests.datasets.conftest import fer_csv
from tests.inference.conftest import make_version
from tests.training_web.conftest import make_ready_dataset
from tests.training_web.test_charts import finished_run, occlusion_item

# Metrics carry more numbers than the schema names (ece, nll, occlusion, ...); every other object is closed.
OPEN = {"RunMetricsOutput"}


@pytest.fixture(scope="module")
def openapi():
    return SchemaGenerator().get_schema(request=None, public=True)


def json_schema(node, *, name: str = ""):
    """OpenAPI 3.0 -> JSON Schema: `nullable` becomes a null alternative; objects with named
    properties admit no others."""
    if isinstance(node, list):
        return [json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: (value if key in ("enum", "required") else
                 {k: json_schema(v) for k, v in value.items()} if key == "properties" else json_schema(value))
           for key, value in node.items() if key != "nullable"}
    if "properties" in out and "additionalProperties" not in out and name not in OPEN:
        out["additionalProperties"] = False
    if node.get("nullable"):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def check(openapi, response, path: str, method: str = "get") -> dict:
    """Validate a response against the schema of its route, method and status; returns its body."""
    operation = openapi["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    assert documented, f"{method.upper()} {path} answered {response.status_code}, which its schema does not document"
    schema = documented["content"]["application/json"]["schema"]
    components = {name: json_schema(value, name=name) for name, value in openapi["components"]["schemas"].items()}
    body = response.json()
    jsonschema.Draft7Validator({"allOf": [json_schema(schema)], "components": {"schemas": components}}).validate(body)
    return body


def labeling_set_under_review(owner) -> LabelingSet:
    """A processed set of three faces: two with proposals, one without (no model answered for it)."""
    labeling_set = LabelingSet.objects.create(owner=owner, name="team photos", status=LabelingSet.Status.READY,
                                              progress=100, photos_total=1, photos_done=1,
                                              report={"model": {"version": "test-default", "error": ""}})
    crop = cv2.imencode(".png", np.full((48, 48), 128, np.uint8))[1].tobytes()
    for i, (label, p) in enumerate([(3, 0.9), (4, 0.6), (None, None)]):
        probabilities = {} if label is None else {c: (p if k == label else (1 - p) / 6) for k, c in enumerate(CLASSES)}
        LabelingFace.objects.create(labeling_set=labeling_set, crop_png=crop, source_name=f"team.jpg#{i}",
                                    box=[10 + 60 * i, 20, 50, 50], proposed_label=label, proposed_probability=p,
                                    probabilities=probabilities, model_version="test-default" if label else "")
    return labeling_set


@pytest.mark.django_db
class TestRunAnswers:
    def test_a_queued_then_cancelled_run_matches_the_schema(self, openapi, alice, alice_api):
        dataset = make_ready_dataset(alice, per_class=8)
        created = alice_api.post("/api/runs/", {"dataset": dataset.pk, "architecture": "light_residual",
                                                "epochs": 1, "batch_size": 16, "num_threads": 1024}, format="json")
        body = check(openapi, created, "/api/runs/", "post")
        assert created.status_code == 201 and body["status"] == "queued" and body["notes"]
        queued = check(openapi, alice_api.get(f"/api/runs/{body['id']}/"), "/api/runs/{id}/")
        assert queued["status"] == "queued" and queued["model_version"] is None and queued["started_at"] is None

        cancelled = check(openapi, alice_api.post(f"/api/runs/{body['id']}/cancel/"), "/api/runs/{id}/cancel/", "post")
        assert cancelled["status"] == "cancelled"
        again = alice_api.post(f"/api/runs/{body['id']}/cancel/")
        assert again.status_code == 409
        assert check(openapi, again, "/api/runs/{id}/cancel/", "post")["code"] == "already_finished"
        run = check(openapi, alice_api.get(f"/api/runs/{body['id']}/"), "/api/runs/{id}/")
        assert run["status"] == "cancelled" and run["error"] == "cancelled" and run["finished_at"]

    def test_a_succeeded_run_with_metrics_and_a_model_matches_the_schema(self, openapi, alice, alice_api):
        dataset = make_ready_dataset(alice, per_class=4)
        run = finished_run(alice, dataset, [2.3, 1.9, 1.5], [occlusion_item("happy", 0.2)])
        # An AUC is undefined where the test split lacks a class: null, as the evaluation writes it.
        run.metrics["roc"]["disgust"] = {"fpr": [], "tpr": [], "auc": None}
        run.metrics["micro_auc"] = None
        run.save()
        version = make_version(alice, run=run)

        body = check(openapi, alice_api.get(f"/api/runs/{run.pk}/"), "/api/runs/{id}/")
        assert body["status"] == "succeeded" and body["epochs_done"] == 3
        assert body["metrics"]["per_class"]["happy"]["f1"] == 0.5 and body["metrics"]["roc"]["disgust"]["auc"] is None
        assert body["model_version"]["id"] == version.pk and body["dataset"] == {"id": dataset.pk, "name": dataset.name}

        listed = check(openapi, alice_api.get("/api/runs/"), "/api/runs/")
        assert listed[0]["model_version"] == version.pk and listed[0]["metrics"]["accuracy"] == 0.5
        assert listed[0]["config"] == {"epochs": 3, "batch_size": 16, "learning_rate": 0.01}
        assert "roc" not in listed[0]["metrics"]


@pytest.mark.django_db
class TestDatasetAnswers:
    def test_ready_and_failed_datasets_match_the_schema(self, openapi, alice, alice_api):
        ready = make_ready_dataset(alice, per_class=4)
        failed = Dataset.objects.create(owner=alice, name="broken", status=Dataset.Status.FAILED, error="bad_archive",
                                        human_readable_error="The file is not a zip.", source_name="broken.zip")

        body = check(openapi, alice_api.get(f"/api/datasets/{ready.pk}/"), "/api/datasets/{id}/")
        assert body["status"] == "ready" and body["num_items"] == ready.num_items > 0 and set(body["samples"]) == set(CLASSES)
        assert body["urls"]["item_png"] == f"/api/datasets/{ready.pk}/items/{{index}}.png"
        body = check(openapi, alice_api.get(f"/api/datasets/{failed.pk}/"), "/api/datasets/{id}/")
        assert body["status"] == "failed" and body["error"] == "bad_archive" and body["finished_at"] is None
        assert "samples" not in body and "urls" not in body

        listed = check(openapi, alice_api.get("/api/datasets/"), "/api/datasets/")
        assert {d["id"] for d in listed} == {ready.pk, failed.pk} and "report" not in listed[0]

    def test_an_upload_and_its_refusal_match_the_schema(self, openapi, alice_api):
        created = alice_api.post("/api/datasets/", {"name": "csv", "file": SimpleUploadedFile(
            "fer2013.csv", fer_csv().encode())}, format="multipart")
        assert created.status_code == 201, created.content
        assert check(openapi, created, "/api/datasets/", "post")["status"] == "importing"
        refused = alice_api.post("/api/datasets/", {"name": "x", "file": SimpleUploadedFile("x.zip", b"not a zip")},
                                 format="multipart")
        assert refused.status_code == 400
        assert check(openapi, refused, "/api/datasets/", "post")["code"]


@pytest.mark.django_db
def test_a_labeling_set_under_review_matches_the_schema(openapi, alice, alice_api):
    labeling_set = labeling_set_under_review(alice)
    sets = "/api/labeling/sets/{id}/"

    body = check(openapi, alice_api.get(f"/api/labeling/sets/{labeling_set.pk}/"), sets)
    assert body["counts"] == {"pending": 3, "confirmed": 0, "skipped": 0, "rejected": 0, "all": 3} and body["datasets"] == []
    listed = check(openapi, alice_api.get("/api/labeling/sets/"), "/api/labeling/sets/")
    assert listed[0]["id"] == labeling_set.pk
    page = check(openapi, alice_api.get(f"/api/labeling/sets/{labeling_set.pk}/faces/?limit=2"), sets + "faces/")
    assert page["count"] == 3 and len(page["results"]) == 2
    third = labeling_set.faces.order_by("id").last().pk

    face = check(openapi, alice_api.get(f"/api/labeling/faces/{third}/"), "/api/labeling/faces/{id}/")
    assert face["proposed_label"] is None and face["proposed_probability"] is None and face["confirmed_label"] is None
    updated = check(openapi, alice_api.patch(f"/api/labeling/faces/{third}/", {"label": "sad"}, format="json"),
                    "/api/labeling/faces/{id}/", "patch")
    assert updated["face"]["confirmed_label"] == "sad" and updated["class_counts"]["sad"] == 1
    accepted = check(openapi, alice_api.post(f"/api/labeling/sets/{labeling_set.pk}/accept/", {"min_probability": 0.5},
                                             format="json"), sets + "accept/", "post")
    assert accepted["accepted"] == 2 and accepted["counts"]["confirmed"] == 3

    created = alice_api.post(f"/api/labeling/sets/{labeling_set.pk}/create-dataset/", {"name": "team"}, format="json")
    assert created.status_code == 201, created.content
    dataset = check(openapi, created, sets + "create-dataset/", "post")
    assert dataset["num_items"] == 3 and dataset["url"] == f"/datasets/{dataset['id']}/"
    body = check(openapi, alice_api.get(f"/api/labeling/sets/{labeling_set.pk}/"), sets)
    assert body["datasets"][0]["id"] == dataset["id"] and body["class_counts"]["happy"] == 1
