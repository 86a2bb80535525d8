"""The runs API without a worker: validation, privacy, cancel of queued runs (the models API:
tests/inference/test_models_api.py)."""
from pathlib import Path

import pytest

from tests.inference.conftest import make_version
from tests.training_web.conftest import make_ready_dataset
from training_jobs.models import TrainingRun

TINY = {"architecture": "light_residual", "epochs": 2, "batch_size": 16}


def post_run(client, dataset, **fields):
    return client.post("/api/runs/", {"dataset": dataset.pk, **TINY, **fields}, format="json")


@pytest.mark.django_db
class TestCreateRun:
    def test_it_creates_a_queued_run_with_the_full_recipe(self, alice_api, ready_dataset):
        response = post_run(alice_api, ready_dataset, learning_rate=0.01, optimizer="adam")
        assert response.status_code == 201, response.content
        run = TrainingRun.objects.get(pk=response.json()["id"])
        assert response.json()["status"] == "queued"
        assert run.config["learning_rate"] == 0.01 and run.config["optimizer"] == "adam"
        # Fields not given take the recipe's defaults (the 2022 paper's).
        assert run.config["early_stopping_patience"] == 30 and run.config["class_weighting"] is True
        ready_dataset.refresh_from_db()
        assert ready_dataset.is_locked

    def test_it_lists_valid_choices_for_bad_fields(self, alice_api, ready_dataset):
        response = post_run(alice_api, ready_dataset, architecture="vgg99", optimizer="lion", epochs=0, colour="red")
        assert response.status_code == 400
        errors = response.json()["fields"]
        assert "adapted_residual" in errors["architecture"][0] and "light_residual" in errors["architecture"][0]
        assert "nadam" in errors["optimizer"][0] and "sgd" in errors["optimizer"][0]
        assert "between 1 and 1000" in errors["epochs"][0]
        assert "valid fields are" in errors["colour"][0]
        assert not TrainingRun.objects.exists()

    def test_it_refuses_datasets_that_are_not_ready(self, alice_api, ready_dataset):
        ready_dataset.status = "importing"
        ready_dataset.save()
        response = post_run(alice_api, ready_dataset)
        assert response.status_code == 400
        assert "only ready datasets" in response.json()["fields"]["dataset"][0]

    def test_it_refuses_another_users_dataset(self, bob_api, ready_dataset):
        response = post_run(bob_api, ready_dataset)
        assert response.status_code == 400
        assert f"no dataset {ready_dataset.pk}" in response.json()["fields"]["dataset"][0]

    def test_it_needs_a_login(self, anon_api, ready_dataset):
        assert post_run(anon_api, ready_dataset).status_code == 401

    def test_fine_tuning_needs_a_succeeded_run(self, alice_api, ready_dataset):
        earlier = post_run(alice_api, ready_dataset).json()["id"]
        response = post_run(alice_api, ready_dataset, init_from_run=earlier)
        assert response.status_code == 400
        assert "fine-tune from a succeeded run" in response.json()["fields"]["init_from_run"][0]


@pytest.mark.django_db
class TestRunPrivacy:
    def test_other_users_get_404_and_staff_see_all(self, alice_api, bob_api, carol_api, ready_dataset):
        run_id = post_run(alice_api, ready_dataset).json()["id"]
        assert alice_api.get(f"/api/runs/{run_id}/").status_code == 200
        assert bob_api.get(f"/api/runs/{run_id}/").status_code == 404
        assert bob_api.post(f"/api/runs/{run_id}/cancel/").status_code == 404
        assert carol_api.get(f"/api/runs/{run_id}/").json()["owner"] == "alice"
        assert [r["id"] for r in alice_api.get("/api/runs/").json()] == [run_id]
        assert bob_api.get("/api/runs/").json() == []
        assert [r["id"] for r in carol_api.get("/api/runs/").json()] == [run_id]

    def test_run_pages_follow_the_same_rules(self, client, alice, bob, ready_dataset, alice_api):
        run_id = post_run(alice_api, ready_dataset).json()["id"]
        client.force_login(bob)
        assert client.get(f"/runs/{run_id}/").status_code == 404
        client.force_login(alice)
        page = client.get(f"/runs/{run_id}/")
        assert page.status_code == 200 and b"run-data" in page.content

    def test_the_detail_has_the_contract_fields(self, alice_api, ready_dataset):
        run_id = post_run(alice_api, ready_dataset).json()["id"]
        body = alice_api.get(f"/api/runs/{run_id}/").json()
        for key in ("id", "status", "progress", "config", "history", "metrics", "model_version", "error",
                    "human_readable_error", "param_count", "wall_time_s"):
            assert key in body


@pytest.mark.django_db
class TestCancelQueued:
    def test_a_queued_run_is_cancelled_at_once(self, alice_api, ready_dataset):
        run_id = post_run(alice_api, ready_dataset).json()["id"]
        response = alice_api.post(f"/api/runs/{run_id}/cancel/")
        assert response.status_code == 200 and response.json()["status"] == "cancelled"
        assert TrainingRun.objects.get(pk=run_id).status == "cancelled"
        # A finished run cannot be cancelled again, and says why.
        again = alice_api.post(f"/api/runs/{run_id}/cancel/")
        assert again.status_code == 409 and "already cancelled" in again.json()["detail"]

    def test_a_cancelled_run_is_never_claimed(self, alice_api, ready_dataset):
        from training_jobs.services import run_claim

        run_id = post_run(alice_api, ready_dataset).json()["id"]
        alice_api.post(f"/api/runs/{run_id}/cancel/")
        assert run_claim(run_id=run_id, worker="w@test") is None


@pytest.mark.django_db
class TestArchitectures:
    def test_it_lists_every_architecture_with_its_parameter_count(self, alice_api):
        body = alice_api.get("/api/architectures/").json()
        counts = {a["name"]: a["param_count"] for a in body}
        assert counts["adapted_residual"] == 9_766_391
        assert abs(counts["light_residual"] - 552_455) / 552_455 < 0.05
        assert {"basic_cnn", "resnet34", "resnet50", "hybrid_resnet34_50"} <= set(counts)
        assert all(a["description"] for a in body)

    def test_the_recipe_schema_lists_every_field(self, alice_api):
        fields = {f["name"]: f for f in alice_api.get("/api/recipe/").json()}
        assert fields["optimizer"]["choices"] == ["sgd", "adam", "adamw", "rmsprop", "nadam"]
        assert fields["batch_size"]["default"] == 64


def test_make_ready_dataset_has_learnable_classes(db, alice):
    dataset = make_ready_dataset(alice, per_class=10)
    assert dataset.num_items == 30
    assert dataset.class_counts == {"happy": 10, "sad": 10, "surprise": 10}


@pytest.mark.django_db
class TestStartingWeights:
    def test_an_uploaded_checkpoint_is_stored_with_the_run(self, alice_api, ready_dataset):
        from django.core.files.uploadedfile import SimpleUploadedFile

        upload = SimpleUploadedFile("imagenet-resnet34.pt", b"torch bytes", content_type="application/octet-stream")
        response = alice_api.post("/api/runs/", {"dataset": ready_dataset.pk, "architecture": "resnet34",
                                                 "epochs": "3", "freeze_backbone_epochs": "1",
                                                 "init_checkpoint": upload}, format="multipart")
        assert response.status_code == 201, response.content
        run = TrainingRun.objects.get()
        assert Path(run.config["init_checkpoint"]).read_bytes() == b"torch bytes"
        assert run.config["freeze_backbone_epochs"] == 1 and run.config["epochs"] == 3

    def test_clients_cannot_point_at_server_files(self, alice_api, ready_dataset):
        response = post_run(alice_api, ready_dataset, teacher_checkpoint="/etc/passwd")
        assert response.status_code == 400
        assert response.json()["fields"]["teacher_checkpoint"] == ["server paths cannot be given here; use teacher_run (an earlier run) or teacher_model (a model version, or default)"]
        response = alice_api.post("/api/runs/", {"dataset": ready_dataset.pk, "init_checkpoint": "/etc/hosts"})
        assert response.status_code == 400 and "init_checkpoint" in response.json()["fields"]
        assert not TrainingRun.objects.exists()

    def test_a_teacher_is_an_earlier_succeeded_run_of_the_user(self, alice, bob, alice_api, bob_api, ready_dataset):
        teacher = TrainingRun.objects.create(owner=alice, dataset=ready_dataset, architecture="resnet34",
                                             optimizer="nadam", status="succeeded")
        refused = post_run(bob_api, make_ready_dataset(bob, per_class=2), teacher_run=teacher.pk)
        assert refused.status_code == 400 and refused.json()["fields"]["teacher_run"] == [f"no run {teacher.pk}"]
        response = post_run(alice_api, ready_dataset, teacher_run=teacher.pk)
        assert response.status_code == 201, response.content
        run = TrainingRun.objects.get(pk=response.json()["id"])
        assert run.config["teacher_checkpoint"] == str(teacher.workdir / "best.pt")


    def test_a_teacher_model_is_the_shipped_default_or_a_version_the_user_sees(
            self, alice, bob, alice_api, bob_api, ready_dataset, settings, tmp_path):
        shipped = tmp_path / "shipped.onnx"
        shipped.write_bytes(b"the shipped model")
        settings.FERWEB_DEFAULT_MODEL = shipped
        response = post_run(alice_api, ready_dataset, teacher_model="default")
        assert response.status_code == 201, response.content
        run = TrainingRun.objects.get(pk=response.json()["id"])
        # The run learns from its own copy, whatever happens to the shipped file later.
        assert run.config["teacher_checkpoint"] == str(run.workdir / "teacher.onnx")
        shipped.write_bytes(b"republished")
        assert (run.workdir / "teacher.onnx").read_bytes() == b"the shipped model"

        version = make_version(alice, "alices")
        response = post_run(alice_api, ready_dataset, teacher_model=str(version.pk))
        assert response.status_code == 201, response.content
        run = TrainingRun.objects.get(pk=response.json()["id"])
        assert Path(run.config["teacher_checkpoint"]).read_bytes() == b"onnx bytes of alices"

        bobs_dataset = make_ready_dataset(bob, per_class=2)
        refused = post_run(bob_api, bobs_dataset, teacher_model=str(version.pk))
        assert refused.status_code == 400
        assert refused.json()["fields"]["teacher_model"] == [f"no model {version.pk}; give a model version id or default"]

    def test_a_run_has_one_teacher_and_the_default_must_exist(self, alice, alice_api, ready_dataset, settings, tmp_path):
        teacher = TrainingRun.objects.create(owner=alice, dataset=ready_dataset, architecture="resnet34",
                                             optimizer="nadam", status="succeeded")
        both = post_run(alice_api, ready_dataset, teacher_run=teacher.pk, teacher_model="default")
        assert both.status_code == 400 and "not both" in both.json()["fields"]["teacher_model"][0]
        settings.FERWEB_DEFAULT_MODEL = tmp_path / "none.onnx"
        missing = post_run(alice_api, ready_dataset, teacher_model="default")
        assert missing.json()["fields"] == {"teacher_model": ["this installation ships no default model"]}
        assert TrainingRun.objects.count() == 1

@pytest.mark.django_db(transaction=True)
def test_the_progress_socket_needs_a_login(alice, ready_dataset):
    from asgiref.sync import async_to_sync
    from channels.testing import WebsocketCommunicator

    from ferweb.asgi import application

    run = TrainingRun.objects.create(owner=alice, dataset=ready_dataset, architecture="light_residual",
                                     optimizer="nadam")

    async def connect():
        communicator = WebsocketCommunicator(application, f"/ws/runs/{run.pk}/", headers=[(b"origin", b"http://testserver")])
        return await communicator.connect()

    assert async_to_sync(connect)() == (False, 4403)


@pytest.mark.django_db
def test_staff_see_runs_and_models_in_the_admin(client, carol, alice, ready_dataset, alice_api):
    post_run(alice_api, ready_dataset)
    make_version(alice, "alice-v1")
    client.force_login(carol)
    assert "light_residual" in client.get("/admin/training_jobs/trainingrun/").content.decode()
    assert "alice-v1" in client.get("/admin/inference/modelversion/").content.decode()


@pytest.mark.django_db
def test_the_openapi_schema_documents_the_training_routes(alice_api):
    schema = alice_api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for route in ("/api/runs/", "/api/runs/{id}/", "/api/runs/{id}/cancel/", "/api/architectures/",
                  "/api/models/", "/api/models/{id}/onnx/", "/api/models/{id}/activate/",
                  "/api/models/default/", "/api/models/default/activate/"):
        assert route in schema["paths"], route
    back = schema["paths"]["/api/models/default/activate/"]["post"]
    assert back["operationId"] == "models_default_activate"
    assert {"200", "403", "404"} <= set(back["responses"])
