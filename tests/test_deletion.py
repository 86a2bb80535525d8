"""Deleting datasets, runs, jobs and labeling sets through the API: what each preview says and frees,
what goes and what stays, and the storage quota that goes down by exactly the bytes freed.

alice owns everything here; bob must not be able to see or delete any of it (404, as for every
record of another user); a dataset that runs were trained on is archived, never destroyed.
"""
import cv2
import numpy as np
import pytest
from django.test import Client

from ferweb.datasets.models import Dataset, DatasetItem
from ferweb.labeling.models import LabelingFace, LabelingSet
from ferweb.quotas import storage_used
from inference.models import ActiveModelChoice, InferenceJob
from inference.selectors import active_model_for
from tests.inference.conftest import make_version
from tests.test_api_shapes import check
from tests.training_web.conftest import make_ready_dataset
from tests.training_web.test_charts import finished_run, occlusion_item
from training_jobs.models import TrainingRun

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def openapi():
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def commit(django_capture_on_commit_callbacks):
    """Run what the request left for after its commit (file removals), as the server does."""
    return lambda: django_capture_on_commit_callbacks(execute=True)


def preview(api, openapi, path: str) -> dict:
    response = api.get(f"{path}delete-preview/")
    assert response.status_code == 200, response.content
    return check(openapi, response, f"/api/{template(path)}delete-preview/")


def template(path: str) -> str:
    """/api/datasets/12/ -> datasets/{id}/ (the schema's spelling)."""
    parts = path.strip("/").split("/")[1:]
    return "/".join("{id}" if part.isdigit() else part for part in parts) + "/"


def a_run(owner, dataset, **fields):
    run = finished_run(owner, dataset, [2.0, 1.5], [occlusion_item("happy", 0.01)])
    if fields:
        TrainingRun.objects.filter(pk=run.pk).update(**fields)
        run.refresh_from_db()
    return run


def checkpoints(run, sizes=(1000, 3000)):
    run.workdir.mkdir(parents=True, exist_ok=True)
    for name, size in zip(("best.pt", "last.pt"), sizes):
        (run.workdir / name).write_bytes(b"\0" * size)
    return sum(sizes)


def page(user, url: str) -> str:
    client = Client()
    client.force_login(user)
    return client.get(url).content.decode()


# ---------------------------------------------------------------- datasets


def test_deleting_a_dataset_removes_its_faces_and_files_and_frees_its_bytes_of_the_quota(
        alice, alice_api, bob_api, openapi, commit):
    dataset = make_ready_dataset(alice, per_class=4, name="fer2013-train")
    (dataset.storage_dir / "mean_faces.npy").write_bytes(b"\0" * 500)
    on_disk = sum(f.stat().st_size for f in dataset.storage_dir.iterdir())
    before = storage_used(alice)

    assert bob_api.get(f"/api/datasets/{dataset.pk}/delete-preview/").status_code == 404
    assert bob_api.delete(f"/api/datasets/{dataset.pk}/").status_code == 404
    said = preview(alice_api, openapi, f"/api/datasets/{dataset.pk}/")
    assert said == {"what": f"Dataset #{dataset.pk} \"fer2013-train\" will be deleted with its {dataset.num_items} "
                            "faces and their labels.", "frees_bytes": on_disk, "archived": False}

    with commit():
        assert alice_api.delete(f"/api/datasets/{dataset.pk}/").status_code == 204
    assert not Dataset.objects.filter(pk=dataset.pk).exists() and not DatasetItem.objects.exists()
    assert not dataset.storage_dir.exists()
    assert before - storage_used(alice) == on_disk
    assert alice_api.get(f"/api/datasets/{dataset.pk}/").status_code == 404


def test_a_dataset_runs_were_trained_on_is_archived_hidden_from_every_list_and_kept_for_them(
        alice, alice_api, openapi, commit):
    dataset = make_ready_dataset(alice, per_class=4, name="kept for lineage")
    runs = [a_run(alice, dataset) for _ in range(3)]
    labeling_set = LabelingSet.objects.create(owner=alice, name="photos")
    labeling_set.datasets.add(dataset)

    said = preview(alice_api, openapi, f"/api/datasets/{dataset.pk}/")
    assert said["archived"] is True and said["frees_bytes"] == 0
    assert "archived, not deleted: 3 runs were trained on it, so it stays for them, hidden from your lists" in said["what"]
    with commit():
        assert alice_api.delete(f"/api/datasets/{dataset.pk}/").status_code == 204
    dataset.refresh_from_db()
    assert dataset.archived_at is not None and dataset.pixels_path.exists()
    assert DatasetItem.objects.filter(dataset=dataset).count() == dataset.num_items

    # Hidden from every list: the API's, the datasets page, the new-run form, the labeling set's.
    assert dataset.pk not in [d["id"] for d in alice_api.get("/api/datasets/").json()]
    assert "kept for lineage" not in page(alice, "/datasets/")
    assert "kept for lineage" not in page(alice, "/runs/new/")
    assert alice_api.get(f"/api/labeling/sets/{labeling_set.pk}/").json()["datasets"] == []
    # Still there for its runs: their pages link to it, and its own page says what happened.
    assert f'href="/datasets/{dataset.pk}/"' in page(alice, f"/runs/{runs[0].pk}/")
    assert alice_api.get(f"/api/datasets/{dataset.pk}/").json()["archived_at"] is not None
    assert 'id="dataset-archived">Archived</span>' in page(alice, f"/datasets/{dataset.pk}/")
    refused = alice_api.post("/api/runs/", {"dataset": dataset.pk, "epochs": 1}, format="json")
    assert refused.status_code == 400 and "was deleted" in refused.json()["fields"]["dataset"][0]

    # Each run's deletion leaves it; the last one's takes it along.
    for run in runs[:2]:
        with commit():
            assert alice_api.delete(f"/api/runs/{run.pk}/").status_code == 204
        assert Dataset.objects.filter(pk=dataset.pk).exists()
    last = preview(alice_api, openapi, f"/api/runs/{runs[2].pk}/")
    assert f"The deleted dataset #{dataset.pk} \"kept for lineage\" that only this run kept goes too" in last["what"]
    # its packed faces and the small files of its versions
    assert last["frees_bytes"] == sum(f.stat().st_size for f in dataset.storage_dir.rglob("*") if f.is_file())
    with commit():
        assert alice_api.delete(f"/api/runs/{runs[2].pk}/").status_code == 204
    assert not Dataset.objects.filter(pk=dataset.pk).exists() and not dataset.storage_dir.exists()


def test_an_archived_dataset_whose_runs_are_gone_is_deleted_by_deleting_it_again(alice, alice_api, openapi, commit):
    dataset = make_ready_dataset(alice, per_class=4)
    run = a_run(alice, dataset)
    assert alice_api.delete(f"/api/datasets/{dataset.pk}/").status_code == 204
    TrainingRun.objects.filter(pk=run.pk).delete()  # e.g. by staff in the admin: the dataset stays archived

    assert preview(alice_api, openapi, f"/api/datasets/{dataset.pk}/")["archived"] is False
    with commit():
        assert alice_api.delete(f"/api/datasets/{dataset.pk}/").status_code == 204
    assert not Dataset.objects.filter(pk=dataset.pk).exists() and not dataset.storage_dir.exists()


# ---------------------------------------------------------------- runs


def test_deleting_a_run_removes_its_checkpoints_and_its_model_keeps_serving(alice, alice_api, bob_api, openapi, commit):
    dataset = make_ready_dataset(alice, per_class=4)
    run = a_run(alice, dataset)
    freed = checkpoints(run)
    version = make_version(alice, "run-7-light_residual", run=run)
    ActiveModelChoice.objects.create(user=alice, model_version=version)
    before = storage_used(alice)

    assert bob_api.get(f"/api/runs/{run.pk}/delete-preview/").status_code == 404
    assert bob_api.delete(f"/api/runs/{run.pk}/").status_code == 404
    said = preview(alice_api, openapi, f"/api/runs/{run.pk}/")
    assert said == {"what": f"Run #{run.pk} \"2 epoch run\" will be deleted with its checkpoints, history and "
                            "evaluation. Its model run-7-light_residual stays on the Models page and keeps serving "
                            "wherever it is active.", "frees_bytes": freed, "archived": False}
    with commit():
        assert alice_api.delete(f"/api/runs/{run.pk}/").status_code == 204
    assert not TrainingRun.objects.filter(pk=run.pk).exists() and not run.workdir.exists()
    assert before - storage_used(alice) == freed
    version.refresh_from_db()
    assert version.run_id is None and version.path.exists()
    assert active_model_for(alice).model_version_id == version.pk
    assert Dataset.objects.filter(pk=dataset.pk).exists()  # not archived: it stays as it was


@pytest.mark.parametrize("state", ["queued", "running"])
def test_a_queued_or_running_run_is_refused_until_it_is_cancelled(alice, alice_api, openapi, state, commit):
    run = a_run(alice, make_ready_dataset(alice, per_class=4), status=state)
    said = preview(alice_api, openapi, f"/api/runs/{run.pk}/")
    assert said == {"what": f"Run {run.pk} is {state}: cancel it first, then delete it.", "frees_bytes": 0,
                    "archived": False}
    response = alice_api.delete(f"/api/runs/{run.pk}/")
    assert response.status_code == 409
    assert check(openapi, response, "/api/runs/{id}/", "delete")["code"] == "still_running"
    assert TrainingRun.objects.filter(pk=run.pk).exists()

    assert alice_api.post(f"/api/runs/{run.pk}/cancel/").status_code == 200
    with commit():
        assert alice_api.delete(f"/api/runs/{run.pk}/").status_code == 204


def test_a_run_whose_weights_an_unfinished_run_starts_from_is_refused(alice, alice_api):
    dataset = make_ready_dataset(alice, per_class=4)
    parent = a_run(alice, dataset)
    child = a_run(alice, dataset, status="queued",
                  config={"epochs": 1, "init_checkpoint": str(parent.workdir / "best.pt")})
    response = alice_api.delete(f"/api/runs/{parent.pk}/")
    assert response.status_code == 409 and response.json()["code"] == "in_use"
    assert f"#{child.pk}" in response.json()["detail"]


# ---------------------------------------------------------------- labeling sets and jobs


def test_deleting_a_labeling_set_removes_its_photos_and_faces_and_keeps_its_datasets(
        alice, alice_api, bob_api, openapi, commit):
    labeling_set = LabelingSet.objects.create(owner=alice, name="team photos", photos_total=2, photos_done=1,
                                              status=LabelingSet.Status.READY)
    crop = cv2.imencode(".png", np.full((48, 48), 128, np.uint8))[1].tobytes()
    for status in ("confirmed", "pending", "confirmed"):
        LabelingFace.objects.create(labeling_set=labeling_set, crop_png=crop, source_name="team.jpg", status=status)
    labeling_set.storage_dir.mkdir(parents=True)
    (labeling_set.storage_dir / "waiting.jpg").write_bytes(b"\xff" * 700)
    made = make_ready_dataset(alice, per_class=2)
    labeling_set.datasets.add(made)

    assert bob_api.get(f"/api/labeling/sets/{labeling_set.pk}/delete-preview/").status_code == 404
    assert bob_api.delete(f"/api/labeling/sets/{labeling_set.pk}/").status_code == 404
    said = preview(alice_api, openapi, f"/api/labeling/sets/{labeling_set.pk}/")
    assert said == {"what": f"Labeling set #{labeling_set.pk} \"team photos\" will be deleted with its 2 photos and "
                            "3 faces (2 confirmed). The dataset made from it stays.",
                    "frees_bytes": 700 + 3 * len(crop), "archived": False}
    with commit():
        assert alice_api.delete(f"/api/labeling/sets/{labeling_set.pk}/").status_code == 204
    assert not LabelingSet.objects.exists() and not LabelingFace.objects.exists()
    assert not labeling_set.storage_dir.exists() and Dataset.objects.filter(pk=made.pk).exists()


def test_deleting_a_job_removes_its_results_and_upload(alice, alice_api, bob_api, openapi, commit):
    job = InferenceJob.objects.create(owner=alice, kind="video", status="succeeded", source_name="clip.mp4")
    job.results_dir.mkdir(parents=True)
    job.csv_path.write_text("frame,face\n" * 10)
    job.json_path.write_text("{}")
    before = storage_used(alice)

    assert bob_api.get(f"/api/jobs/{job.pk}/delete-preview/").status_code == 404
    assert bob_api.delete(f"/api/jobs/{job.pk}/").status_code == 404
    said = preview(alice_api, openapi, f"/api/jobs/{job.pk}/")
    assert said == {"what": f"Job #{job.pk} on \"clip.mp4\" will be deleted with its results (CSV, JSON and "
                            "summary).", "frees_bytes": 112, "archived": False}
    with commit():
        assert alice_api.delete(f"/api/jobs/{job.pk}/").status_code == 204
    assert not InferenceJob.objects.exists() and not job.results_dir.exists()
    assert before - storage_used(alice) == 112


def test_staff_may_delete_what_they_see(alice, carol_api, commit):
    dataset = make_ready_dataset(alice, per_class=2)
    with commit():
        assert carol_api.delete(f"/api/datasets/{dataset.pk}/").status_code == 204
    assert not Dataset.objects.exists()
