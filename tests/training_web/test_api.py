"""The runs and models API without a worker: validation, privacy, cancel of queued runs, activation."""
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from tests.training_web.conftest import make_ready_dataset
from training_jobs.models import ActiveModelChoice, ModelVersion, TrainingRun
from training_jobs.selectors import active_model_for, shipped_model

TINY = {"architecture": "light_residual", "epochs": 2, "batch_size": 16}


def post_run(client, dataset, **fields):
    return client.post("/api/runs/", {"dataset": dataset.pk, **TINY, **fields}, format="json")


def make_version(owner, name="v1", **fields) -> ModelVersion:
    path = Path(settings.MEDIA_ROOT) / "models" / f"{name}.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"onnx bytes of " + name.encode())
    return ModelVersion.objects.create(owner=owner, onnx_file=f"models/{name}.onnx", architecture="light_residual",
                                       version=name, metrics={"accuracy": 0.5}, **fields)


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


@pytest.mark.django_db
class TestModels:
    def test_the_shipped_model_serves_until_one_is_chosen(self, alice):
        active = active_model_for(alice)
        assert active.version == shipped_model().version and active.model_version_id is None
        assert active.version.startswith("default-")  # named by the shipped card, as predictions report it
        assert active.path == Path(settings.FERWEB_DEFAULT_MODEL)
        assert active_model_for(AnonymousUser()).version == shipped_model().version

    def test_a_user_activates_their_own_model(self, alice, bob, alice_api, bob_api):
        mine = make_version(alice, "alice-v1")
        assert bob_api.post(f"/api/models/{mine.pk}/activate/").status_code == 404
        response = alice_api.post(f"/api/models/{mine.pk}/activate/", {}, format="json")
        assert response.status_code == 200 and response.json()["is_active"] is True
        assert active_model_for(alice).model_version_id == mine.pk
        assert active_model_for(bob).version == shipped_model().version
        listed = alice_api.get("/api/models/").json()
        assert [(m["id"], m["is_active"]) for m in listed] == [(mine.pk, True)]
        assert bob_api.get("/api/models/").json() == []

    def test_only_staff_set_the_site_default(self, alice, bob, carol, alice_api, carol_api):
        version = make_version(carol, "site")
        mine = make_version(alice, "alice-v1")
        refused = alice_api.post(f"/api/models/{mine.pk}/activate/", {"site_default": True}, format="json")
        assert refused.status_code == 403 and "only staff" in refused.json()["fields"]["site_default"][0]
        ok = carol_api.post(f"/api/models/{version.pk}/activate/", {"site_default": True}, format="json")
        assert ok.status_code == 200
        assert active_model_for(bob).model_version_id == version.pk
        # A user's own choice wins over the site default.
        ActiveModelChoice.objects.create(user=alice, model_version=mine)
        assert active_model_for(alice).model_version_id == mine.pk

    def test_active_model_is_one_query(self, alice, django_assert_num_queries):
        make_version(alice, "v", is_site_default=True)
        with django_assert_num_queries(1):
            assert active_model_for(alice).version == "v"

    def test_onnx_downloads(self, alice, alice_api, bob_api, settings, tmp_path):
        settings.FERWEB_DEFAULT_MODEL = tmp_path / "default.onnx"
        settings.FERWEB_DEFAULT_MODEL.write_bytes(b"the shipped model")
        mine = make_version(alice, "alice-v1")
        response = alice_api.get(f"/api/models/{mine.pk}/onnx/")
        assert response.status_code == 200 and b"".join(response.streaming_content) == b"onnx bytes of alice-v1"
        assert bob_api.get(f"/api/models/{mine.pk}/onnx/").status_code == 404
        default = bob_api.get("/api/models/active/onnx/")
        assert default.status_code == 200
        assert b"".join(default.streaming_content) == b"the shipped model"
        alice_api.post(f"/api/models/{mine.pk}/activate/")
        active = alice_api.get("/api/models/active/onnx/")
        assert b"".join(active.streaming_content) == b"onnx bytes of alice-v1"

    def test_the_active_alias_resolves_only_to_versions_the_user_may_see(self, alice, bob, carol, alice_api, bob_api,
                                                                         carol_api, settings, tmp_path):
        settings.FERWEB_DEFAULT_MODEL = tmp_path / "default.onnx"
        settings.FERWEB_DEFAULT_MODEL.write_bytes(b"the shipped model")

        def active_onnx(client):
            response = client.get("/api/models/active/onnx/")
            assert response.status_code == 200
            return b"".join(response.streaming_content)

        site = make_version(carol, "site", is_site_default=True)
        assert alice_api.post(f"/api/models/{site.pk}/activate/", {}, format="json").status_code == 200
        assert active_onnx(alice_api) == b"onnx bytes of site"
        # Staff unset the site default: alice may no longer see carol's version, so it no longer serves her.
        carol_api.post("/api/models/default/activate/", {"site_default": True}, format="json")
        assert alice_api.get(f"/api/models/{site.pk}/").status_code == 404
        assert active_onnx(alice_api) == b"the shipped model"
        assert alice_api.get("/api/models/active/").json()["shipped"] is True
        assert active_model_for(alice).model_version_id is None
        # A new site default serves her until she chooses again.
        newer = make_version(carol, "site-2")
        carol_api.post(f"/api/models/{newer.pk}/activate/", {"site_default": True}, format="json")
        assert active_onnx(alice_api) == b"onnx bytes of site-2"
        # A choice of someone else's version (made outside the API) is ignored; staff see every version.
        alices = make_version(alice, "alice-v1")
        ActiveModelChoice.objects.create(user=bob, model_version=alices)
        assert active_onnx(bob_api) == b"onnx bytes of site-2"
        assert active_model_for(bob).model_version_id == newer.pk
        ActiveModelChoice.objects.update_or_create(user=carol, defaults={"model_version": alices})
        assert active_onnx(carol_api) == b"onnx bytes of alice-v1"


def shipped_card() -> dict:
    import json

    return json.loads(Path(settings.FERWEB_DEFAULT_MODEL).with_suffix(".json").read_text())


@pytest.mark.django_db
class TestShippedModel:
    def test_it_is_described_by_its_model_card(self, alice_api):
        card = shipped_card()
        shipped = alice_api.get("/api/models/default/").json()
        assert shipped["id"] is None and shipped["shipped"] is True and shipped["available"] is True
        assert (shipped["version"], shipped["architecture"]) == (card["version"], card["architecture"])
        assert shipped["param_count"] == card["parameters"]
        for name in ("accuracy", "macro_f1", "macro_auc"):
            assert shipped["metrics"][name] == card["metrics_summary"][name]
        assert shipped["is_active"] is True and shipped["is_site_default"] is True
        assert shipped["onnx_url"] == "/api/models/default/onnx/"
        # `active` names the same model while it serves.
        assert alice_api.get("/api/models/active/").json() == shipped

    def test_a_user_returns_to_the_shipped_model(self, alice, bob, alice_api):
        mine = make_version(alice, "alice-v1")
        bobs = make_version(bob, "bob-v1")
        ActiveModelChoice.objects.create(user=bob, model_version=bobs)
        alice_api.post(f"/api/models/{mine.pk}/activate/", {}, format="json")
        assert alice_api.get("/api/models/default/").json()["is_active"] is False

        response = alice_api.post("/api/models/default/activate/", {}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["is_active"] is True
        assert active_model_for(alice).version == shipped_model().version and active_model_for(alice).model_version_id is None
        assert [m["is_active"] for m in alice_api.get("/api/models/").json()] == [False]
        # Only the caller's choice goes; doing it twice changes nothing.
        assert active_model_for(bob).model_version_id == bobs.pk
        assert alice_api.post("/api/models/default/activate/").status_code == 200

    def test_a_user_picks_it_over_the_site_default(self, alice, bob, carol, alice_api):
        site = make_version(carol, "site", is_site_default=True)
        mine = make_version(alice, "alice-v1")
        ActiveModelChoice.objects.create(user=alice, model_version=mine)
        response = alice_api.post("/api/models/default/activate/", {}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["is_active"] is True and response.json()["is_site_default"] is False
        assert active_model_for(alice).version == shipped_model().version and active_model_for(alice).model_version_id is None
        # Everyone else without a choice keeps the site default; a version chosen later wins again.
        assert active_model_for(bob).model_version_id == site.pk
        alice_api.post(f"/api/models/{mine.pk}/activate/", {}, format="json")
        assert active_model_for(alice).model_version_id == mine.pk

    def test_only_staff_unset_the_site_default(self, alice, bob, carol, alice_api, carol_api):
        site = make_version(carol, "site", is_site_default=True)
        carols = make_version(carol, "carol-v1")
        ActiveModelChoice.objects.create(user=carol, model_version=carols)
        refused = alice_api.post("/api/models/default/activate/", {"site_default": True}, format="json")
        assert refused.status_code == 403 and "only staff" in refused.json()["fields"]["site_default"][0]
        assert active_model_for(bob).model_version_id == site.pk

        ok = carol_api.post("/api/models/default/activate/", {"site_default": True}, format="json")
        assert ok.status_code == 200, ok.content
        assert ok.json()["is_site_default"] is True and ok.json()["is_active"] is False
        assert not ModelVersion.objects.filter(is_site_default=True).exists()
        assert active_model_for(bob).version == shipped_model().version
        # As with a version, setting the site default leaves the staff member's own choice alone.
        assert active_model_for(carol).model_version_id == carols.pk
        listed = {m["id"]: m["is_site_default"] for m in carol_api.get("/api/models/").json()}
        assert listed == {site.pk: False, carols.pk: False}

    def test_bad_input_gets_a_clear_answer(self, alice, bob, alice_api, bob_api, anon_api):
        mine = make_version(alice, "alice-v1")
        bad = alice_api.post("/api/models/default/activate/", {"site_default": "maybe"}, format="json")
        assert bad.status_code == 400 and "site_default" in bad.json()["fields"]
        unknown = alice_api.post("/api/models/99999/activate/", {}, format="json")
        assert unknown.status_code == 404 and unknown.json()["detail"] == "No such model version."
        not_yours = bob_api.post(f"/api/models/{mine.pk}/activate/", {}, format="json")
        assert not_yours.status_code == 404 and not_yours.json()["detail"] == "No such model version."
        assert alice_api.get("/api/models/shipped/").status_code == 404
        assert anon_api.post("/api/models/default/activate/").status_code in (401, 403)
        assert anon_api.get("/api/models/default/").status_code in (401, 403)

    def test_without_a_shipped_file_it_says_so(self, alice, alice_api, settings, tmp_path):
        mine = make_version(alice, "alice-v1")
        ActiveModelChoice.objects.create(user=alice, model_version=mine)
        settings.FERWEB_DEFAULT_MODEL = tmp_path / "missing.onnx"
        shipped = alice_api.get("/api/models/default/").json()
        assert shipped["available"] is False and shipped["version"] == "default" and shipped["metrics"] == {}
        refused = alice_api.post("/api/models/default/activate/", {}, format="json")
        assert refused.status_code == 404 and "ships no default model" in refused.json()["detail"]
        assert active_model_for(alice).model_version_id == mine.pk

    def test_its_onnx_downloads_while_a_version_is_active(self, alice, alice_api, settings, tmp_path):
        settings.FERWEB_DEFAULT_MODEL = tmp_path / "default.onnx"
        settings.FERWEB_DEFAULT_MODEL.write_bytes(b"the shipped model")
        mine = make_version(alice, "alice-v1")
        alice_api.post(f"/api/models/{mine.pk}/activate/")
        response = alice_api.get("/api/models/default/onnx/")
        assert response.status_code == 200 and b"".join(response.streaming_content) == b"the shipped model"


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
    assert "alice-v1" in client.get("/admin/training_jobs/modelversion/").content.decode()


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
