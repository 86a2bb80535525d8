"""The label-error finder on a real Celery worker (the `inference` queue) against the real Redis."""
import pytest

from ferweb.datasets import tasks  # noqa: F401  (a worker loads it: it registers the scans' lifecycle)
from ferweb.datasets.models import LabelIssueScan
from ferweb.jobs import KINDS
from tests.datasets.label_issue_faces import band_model, flipped_dataset
from tests.datasets.test_worker import wait_for

pytestmark = pytest.mark.worker


def test_a_real_worker_scans_a_dataset_and_finds_the_flips(celery_worker, alice, alice_api, tmp_path, settings):
    settings.FERWEB_DEFAULT_MODEL = band_model(tmp_path / "models" / "default.onnx")
    dataset, truth, flips, ids = flipped_dataset(alice)
    started = alice_api.post(f"/api/datasets/{dataset.pk}/label-issues/", {"model": "default"}, format="json")
    assert started.status_code == 202 and started.json()["status"] == "queued"
    scan = wait_for(lambda: LabelIssueScan.objects.filter(pk=started.json()["id"], status__in=LabelIssueScan.FINISHED)
                    .first(), timeout=60)
    assert scan.status == "succeeded", scan.human_readable_error
    assert scan.attempts == 1 and scan.heartbeat_at is None and scan.worker == "" and scan.phase == ""
    assert scan.processed == scan.total == len(truth)
    state = alice_api.get(f"/api/datasets/{dataset.pk}/label-issues/").json()
    assert {issue["item"] for issue in state["issues"]} == {ids[i] for i in flips}


def test_scans_are_recovered_by_inference_workers():
    scans = [kind for kind in KINDS if kind.model is LabelIssueScan]
    assert len(scans) == 1 and scans[0].queue() == "inference"


def test_a_real_worker_scores_a_dataset_by_cross_validation(celery_worker, alice, alice_api, settings):
    settings.FERWEB_TRAIN_MAX_MEMORY_MB = 8000
    dataset, truth, flips, ids = flipped_dataset(alice)
    url = f"/api/datasets/{dataset.pk}/label-issues/"
    started = alice_api.post(url, {"model": "cross-validation", "folds": 2, "epochs": 1}, format="json")
    assert started.status_code == 202, started.content
    assert started.json()["model"] == {"choice": "cross-validation", "version_id": None,
                                       "version": "2-fold cross-validation (quick preset, 1 epoch)"}
    scan = wait_for(lambda: LabelIssueScan.objects.filter(pk=started.json()["id"], status__in=LabelIssueScan.FINISHED)
                    .first(), timeout=300)
    assert scan.status == "succeeded", scan.human_readable_error
    assert scan.attempts == 1 and scan.worker == "" and scan.processed == scan.total == len(truth)
    assert scan.recipe["epochs"] == 1 and scan.recipe["occlusion_per_class"] == 0
    state = alice_api.get(url).json()
    assert (state["folds"], state["dataset_version"], state["counts"]["scored"]) == (2, 1, len(truth))


def test_cross_validation_scans_go_to_the_training_queue_and_its_workers_recover_them():
    scans = next(kind for kind in KINDS if kind.model is LabelIssueScan)
    assert scans.queues() == {"inference", "training"}
