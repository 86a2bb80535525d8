"""Presets through the API and the new-run form, and datasets too small to hold out a validation split."""
import re

import numpy as np
import pytest

from tests.training_web.conftest import make_ready_dataset
from training_jobs import services
from training_jobs.ml.data import DataError, TrainData, split_data
from training_jobs.ml.config import TrainConfig
from training_jobs.models import Throughput, TrainingRun

NAMES = ["quick", "ferweb_default", "bah_xue_2022", "mutaliyev_2026", "auliana_2024_sgd", "auliana_2024_adam",
         "auliana_2024_rmsprop"]


@pytest.mark.django_db
class TestPresetList:
    def test_it_lists_every_preset_with_its_complete_recipe(self, alice_api):
        answer = alice_api.get("/api/runs/presets/").json()
        assert [p["name"] for p in answer["presets"]] == NAMES
        for preset in answer["presets"]:
            assert preset["title"] and preset["description"] and preset["source"]
            assert list(preset["config"]) == TrainConfig.field_names()
        quick = answer["presets"][0]["config"]
        assert (quick["architecture"], quick["epochs"], quick["optimizer"]) == ("fast_resnet", 5, "adamw")

    def test_the_default_is_quick_on_a_cpu_and_the_full_recipe_on_a_gpu(self, alice_api):
        assert alice_api.get("/api/runs/presets/").json()["default"] == "quick"  # nothing measured yet
        Throughput.objects.create(device="cpu: Xeon, 2 threads", architecture="fast_resnet", batch_size=128,
                                  train_images_per_s=800, eval_images_per_s=3000, source="benchmark")
        assert alice_api.get("/api/runs/presets/").json()["default"] == "quick"
        Throughput.objects.create(device="cuda: NVIDIA H200", architecture="fast_resnet", batch_size=128,
                                  train_images_per_s=30000, eval_images_per_s=90000, source="benchmark")
        assert alice_api.get("/api/runs/presets/").json()["default"] == "ferweb_default"

    def test_it_needs_a_login(self, anon_api):
        assert anon_api.get("/api/runs/presets/").status_code == 401

    def test_the_recipe_schema_has_labels_and_the_basic_fields(self, alice_api):
        rows = {row["name"]: row for row in alice_api.get("/api/recipe/").json()}
        assert rows["tta_flip"]["label"] == "Average with the mirrored face"
        assert rows["epochs"]["basic"] is True and rows["tta_flip"]["basic"] is False
        assert rows["optimizer"]["choice_labels"]["sgd"] == "SGD with momentum"


@pytest.mark.django_db
class TestCreateFromPreset:
    def test_the_preset_gives_the_recipe_and_the_fields_beside_it_override_it(self, alice_api, ready_dataset):
        response = alice_api.post("/api/runs/", {"dataset": ready_dataset.pk, "preset": "quick", "epochs": 2,
                                                 "batch_size": 32}, format="json")
        assert response.status_code == 201, response.content
        run = TrainingRun.objects.get(pk=response.json()["id"])
        expected = {**services.validate_config(services.recipe_from("quick", {})), "epochs": 2, "batch_size": 32}
        assert run.config == expected
        assert (run.architecture, run.optimizer) == ("fast_resnet", "adamw")
        assert run.name == f"quick (changed) · fast_resnet on {ready_dataset.name}"

    def test_a_run_of_the_preset_as_it_is_is_named_after_it(self, alice_api, ready_dataset):
        response = alice_api.post("/api/runs/", {"dataset": ready_dataset.pk, "preset": "mutaliyev_2026"},
                                  format="json")
        run = TrainingRun.objects.get(pk=response.json()["id"])
        assert run.name == f"mutaliyev_2026 · light_residual on {ready_dataset.name}"
        assert run.config["optimizer"] == "adam" and run.config["scheduler"] == "cosine"

    def test_a_name_given_wins(self, alice_api, ready_dataset):
        response = alice_api.post("/api/runs/", {"dataset": ready_dataset.pk, "preset": "quick", "name": "mine"},
                                  format="json")
        assert TrainingRun.objects.get(pk=response.json()["id"]).name == "mine"

    def test_an_unknown_preset_is_refused_with_the_valid_names(self, alice_api, ready_dataset):
        response = alice_api.post("/api/runs/", {"dataset": ready_dataset.pk, "preset": "fastest"}, format="json")
        assert response.status_code == 400
        body = response.json()
        assert body["code"] == "invalid"
        message = body["fields"]["preset"][0]
        assert "fastest" in message and all(name in message for name in NAMES)
        assert not TrainingRun.objects.exists()

    def test_bad_overrides_are_checked_after_the_merge(self, alice_api, ready_dataset):
        response = alice_api.post("/api/runs/", {"dataset": ready_dataset.pk, "preset": "quick", "epochs": 0},
                                  format="json")
        assert response.status_code == 400
        assert "between 1 and 1000" in response.json()["fields"]["epochs"][0]


def one_face_per_class(owner, **kwargs):
    return make_ready_dataset(owner, per_class=1, splits=(1.0, 0.0, 0.0), name="seven faces", **kwargs)


@pytest.mark.django_db
class TestTooSmallToSplit:
    def test_the_api_refuses_a_dataset_with_one_training_face_per_class(self, alice_api, alice):
        dataset = one_face_per_class(alice)
        response = alice_api.post("/api/runs/", {"dataset": dataset.pk, "preset": "quick"}, format="json")
        assert response.status_code == 400
        assert "too small to hold out a validation split" in response.json()["fields"]["dataset"][0]
        assert not TrainingRun.objects.exists()
        dataset.refresh_from_db()
        assert not dataset.is_locked

    def test_the_form_shows_it_next_to_the_dataset(self, client, alice):
        dataset = one_face_per_class(alice)
        client.force_login(alice)
        response = client.post("/runs/new/", {"dataset": dataset.pk, "preset": "quick"})
        assert response.status_code == 200
        error = re.search(r'class="error field-error" data-field="dataset">([^<]*)<', response.content.decode())
        assert error and "too small to hold out a validation split" in error.group(1)
        assert not TrainingRun.objects.exists()

    def test_a_dataset_with_only_validation_and_test_faces_is_refused(self, alice_api, alice):
        dataset = make_ready_dataset(alice, per_class=4, splits=(0.0, 0.5, 0.5))
        response = alice_api.post("/api/runs/", {"dataset": dataset.pk, "preset": "quick"}, format="json")
        assert response.status_code == 400
        assert "training split" in response.json()["fields"]["dataset"][0]

    @pytest.mark.parametrize("per_class,splits", [
        (1, (1.0, 0.0, 0.0)), (2, (1.0, 0.0, 0.0)), (1, (0.5, 0.5, 0.0)), (3, (0.0, 0.0, 1.0)), (2, (0.5, 0.0, 0.5)),
        (60, (0.7, 0.15, 0.15)),
    ])
    def test_it_refuses_exactly_what_the_trainer_cannot_split(self, alice, per_class, splits):
        dataset = make_ready_dataset(alice, per_class=per_class, splits=splits)
        from ferweb.datasets.selectors import dataset_arrays

        pixels, labels, split_names, _ids = dataset_arrays(dataset)
        try:
            split_data(TrainData(pixels, labels, split_names), validation_fraction=0.1, seed=42)
            trainer_splits = True
        except DataError:
            trainer_splits = False
        refusal = services.holdout_error(dataset=dataset, validation_fraction=0.1, seed=42)
        assert (refusal == "") is trainer_splits, refusal


@pytest.mark.django_db
class TestTheFormOpensOnAPreset:
    def test_a_cpu_worker_opens_the_form_on_quick_with_its_values(self, client, alice, ready_dataset):
        ready_dataset.num_items = 28_709  # as the FER2013 training zip has
        ready_dataset.save()
        client.force_login(alice)
        page = client.get("/runs/new/").content.decode()
        assert re.search(r'data-preset="quick"\s+aria-pressed="true"', page)
        assert 'name="preset" id="id_preset" value="quick"' in page
        assert re.search(r'name="epochs"[^>]*value="5"', page)
        assert re.search(r'name="batch_size"[^>]*value="128"', page)
        assert '<option value="adamw" data-description="" selected>AdamW</option>' in page
        assert re.search(r'<option value="fast_resnet"[^>]*selected>', page)
        assert f"#{ready_dataset.pk} {ready_dataset.name} · 28,709 faces" in page
        assert 'id="advanced-settings"' in page and 'id="run-estimate"' in page
        for preset in NAMES:
            assert f'data-preset="{preset}"' in page

    def test_a_gpu_worker_opens_it_on_the_default_model_recipe(self, client, alice, ready_dataset):
        Throughput.objects.create(device="cuda: NVIDIA H200", architecture="fast_resnet", batch_size=128,
                                  train_images_per_s=30000, eval_images_per_s=90000, source="benchmark")
        client.force_login(alice)
        page = client.get("/runs/new/").content.decode()
        assert 'name="preset" id="id_preset" value="ferweb_default"' in page
        assert re.search(r'name="epochs"[^>]*value="90"', page)

    def test_the_form_posts_the_preset_and_names_the_run_after_it(self, client, alice, ready_dataset):
        from training_jobs.ml.presets import apply_preset

        client.force_login(alice)
        form = {k: v for k, v in apply_preset("quick").items() if k not in services.PATH_FIELDS}
        booleans = [k for k, v in form.items() if isinstance(v, bool)]
        form = {k: ("on" if v else "") if isinstance(v, bool) else v for k, v in form.items()}
        form = {k: v for k, v in form.items() if v != ""}
        response = client.post("/runs/new/", {**form, "_booleans": booleans, "dataset": ready_dataset.pk,
                                              "preset": "quick"})
        assert response.status_code == 302
        run = TrainingRun.objects.get()
        assert run.name == f"quick · fast_resnet on {ready_dataset.name}"
        assert run.config == services.validate_config(apply_preset("quick"))

    def test_it_hides_archived_datasets(self, client, alice, ready_dataset):
        from django.utils import timezone

        archived = make_ready_dataset(alice, per_class=2, name="old faces")
        archived.archived_at = timezone.now()
        archived.save()
        client.force_login(alice)
        page = client.get("/runs/new/").content.decode()
        assert ready_dataset.name in page and "old faces" not in page


def test_holdout_counts_match_a_stratified_split_of_many_faces():
    # The check's arithmetic on its own: one face per class never splits, two of one class do.
    from training_jobs.ml.data import stratified_holdout

    assert len(stratified_holdout(np.arange(7), 0.5, 0)[1]) == 0
    assert len(stratified_holdout(np.array([0, 0, 1]), 0.01, 0)[1]) == 1


@pytest.mark.django_db
def test_the_preset_and_recipe_answers_match_the_schema(alice_api, ready_dataset):
    from drf_spectacular.generators import SchemaGenerator

    from tests.test_api_shapes import check

    openapi = SchemaGenerator().get_schema(request=None, public=True)
    listed = check(openapi, alice_api.get("/api/runs/presets/"), "/api/runs/presets/")
    assert listed["default"] == "quick"
    check(openapi, alice_api.get("/api/recipe/"), "/api/recipe/")
    created = alice_api.post("/api/runs/", {"dataset": ready_dataset.pk, "preset": "quick"}, format="json")
    assert check(openapi, created, "/api/runs/", "post")["status"] == "queued"
    refused = alice_api.post("/api/runs/", {"dataset": ready_dataset.pk, "preset": "nope"}, format="json")
    assert check(openapi, refused, "/api/runs/", "post")["fields"]["preset"]
