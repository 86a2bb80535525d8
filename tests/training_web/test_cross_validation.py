"""The label-error finder by cross-validation: k folds trained in the isolated child process, every face
scored by a model that never saw it, and the flipped labels ranked first.

The faces are the finder's band faces (tests/datasets/label_issue_faces): each class has its own bright
band, which a small network learns in a few epochs, so a face whose label names another band is one a
fold's model disagrees with.
"""
import numpy as np
import pytest

from fercore.label_issues import find_label_issues
from ferweb.datasets import label_issues
from ferweb.datasets.label_issues import CROSS_VALIDATION, CrossValidation
from ferweb.datasets.models import LabelIssueScan
from tests.datasets.label_issue_faces import flipped_dataset
from training_jobs import cross_validation
from training_jobs.services import recipe_from, validate_config

pytestmark = pytest.mark.django_db

# The quick preset's network, trained briefly on small batches: seconds per fold on a CPU. As in the
# training tests, no temperature: fitted on 14 validation faces it hits its floor and blows logits up.
TINY_FOLD = {"epochs": 6, "batch_size": 16, "learning_rate": 0.01, "num_threads": 2, "bf16": False,
             "occlusion_per_class": 0, "seed": 3, "temperature_scaling": False}


def tiny_scan(owner, dataset, folds=3) -> LabelIssueScan:
    recipe = validate_config(recipe_from("quick", TINY_FOLD))
    plan = CrossValidation(folds=folds, recipe=recipe, estimated_seconds=60.0, label=f"{folds}-fold test recipe")
    return label_issues.scan_start(owner=owner, dataset=dataset, model=CROSS_VALIDATION, cross_validation=plan)


def saved_labels(dataset) -> np.ndarray:
    with np.load(dataset.storage_dir / "label-issues" / cross_validation.SCORED_FILE) as saved:
        return saved["labels"]


def test_the_folds_are_stratified_seeded_and_even():
    labels = np.repeat(np.arange(7), [30, 3, 25, 40, 31, 12, 29])
    folds = cross_validation.stratified_folds(labels, 5, seed=1)
    assert np.array_equal(folds, cross_validation.stratified_folds(labels, 5, seed=1))
    assert not np.array_equal(folds, cross_validation.stratified_folds(labels, 5, seed=2))
    sizes = np.bincount(folds, minlength=5)
    assert sizes.max() - sizes.min() <= 1 and sorted(sizes.tolist()) == sorted(cross_validation.fold_sizes(170, 5))
    for label in range(7):  # every class spread over the folds as evenly as it can be
        per_fold = np.bincount(folds[labels == label], minlength=5)
        assert per_fold.max() - per_fold.min() <= 1


def test_cross_validation_ranks_the_flipped_labels_first(alice, settings, monkeypatch):
    from training_jobs import estimates
    from training_jobs.models import Throughput

    settings.FERWEB_TRAIN_MAX_MEMORY_MB = 8000
    monkeypatch.setattr(estimates.os, "cpu_count", lambda: TINY_FOLD["num_threads"])  # every core: it measures
    dataset, truth, flipped, ids = flipped_dataset(alice, per_class=30)
    scan = tiny_scan(alice, dataset)
    assert scan.model_choice == "cross-validation" and scan.folds == 3 and scan.status == "queued"

    done = cross_validation.cv_scan_run(scan_id=scan.pk, worker="test@host")

    assert done.status == "succeeded", done.human_readable_error
    assert (done.progress, done.processed, done.total, done.phase) == (100.0, len(truth), len(truth), "")
    assert done.dataset_version is not None and done.dataset_version.sealed
    flips = {ids[i] for i in flipped}
    flagged = [issue["item"] for issue in done.issues]
    # Chance would put 7% flips among the flagged; six epochs on 140 faces vary a little with the threads' timing.
    assert len(set(flagged) & flips) >= 0.5 * len(flagged) and len(set(flagged) & flips) >= len(flips) // 2, (
        flagged, flips)
    assert done.counts == {"scored": len(truth), "flagged": len(flagged),
                           "flagged_by_class": done.counts["flagged_by_class"]}
    assert not label_issues.cross_validation_dir(done).exists(), "the folds' checkpoints are removed"
    # The folds' epochs refreshed the worker's measured speed of their combination, as runs' do.
    row = Throughput.objects.get(source=f"cross-validation scan {scan.pk}")
    assert (row.architecture, row.batch_size) == ("fast_resnet", 16) and row.train_images_per_s > 0

    # Every face was scored out of fold: the models name the true classes, and rank the flips first.
    with np.load(dataset.storage_dir / "label-issues" / cross_validation.SCORED_FILE) as saved:
        probs, item_ids, folds = saved["probs"], saved["item_ids"], saved["folds"]
    assert probs.shape == (len(truth), 7) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    assert item_ids.tolist() == ids and np.bincount(folds).tolist() == [70, 70, 70]
    assert (probs.argmax(axis=1) == truth).mean() >= 0.8
    ranking = find_label_issues(saved_labels(dataset), probs).ranking()
    assert len(set(item_ids[ranking[:len(flips)]].tolist()) & flips) >= 0.6 * len(flips)


def test_a_cancelled_scan_stops_its_fold_and_leaves_nothing_behind(alice, monkeypatch):
    dataset, _, _, _ = flipped_dataset(alice, per_class=30)
    scan = tiny_scan(alice, dataset)

    def cancel_when_training(self, event):
        if event.get("type") == "run.batch":
            label_issues.label_issue_scans.cancel(LabelIssueScan.objects.get(pk=scan.pk))

    monkeypatch.setattr(cross_validation.FoldProgress, "on_event", cancel_when_training)
    done = cross_validation.cv_scan_run(scan_id=scan.pk, worker="test@host")
    assert (done.status, done.error) == ("cancelled", "cancelled")
    assert done.issues == [] and not label_issues.cross_validation_dir(done).exists()


def test_a_failing_fold_fails_the_scan_and_says_which(alice, monkeypatch):
    from training_jobs.ml.isolated import Outcome

    dataset, _, _, _ = flipped_dataset(alice, per_class=30)
    scan = tiny_scan(alice, dataset)
    monkeypatch.setattr("training_jobs.ml.isolated.run_isolated",
                        lambda job, **kwargs: Outcome("failed", "out_of_memory", "over the memory cap"))
    done = cross_validation.cv_scan_run(scan_id=scan.pk, worker="test@host")
    assert (done.status, done.error) == ("failed", "out_of_memory")
    assert done.human_readable_error.startswith("Fold 1 of 3 ran out of memory")


def test_a_restart_reuses_the_folds_already_scored(alice, monkeypatch):
    """A worker that died after fold 1 left its scores: the next attempt trains folds 2 and 3 only."""
    from training_jobs.ml.isolated import Outcome

    from ferweb.datasets.versions import version_rows, version_seal

    dataset, _, _, _ = flipped_dataset(alice, per_class=30)
    scan = tiny_scan(alice, dataset)
    _rows, labels, _splits, _ids = version_rows(version_seal(dataset))
    trained = []

    def fake_fold(job, **kwargs):
        trained.append(job.workdir)
        held = np.flatnonzero(job.splits == "test")
        probs = np.full((len(held), 7), 1 / 7, np.float32)
        return Outcome("succeeded", result={"evaluation": {"indices": held, "probs": probs}})

    monkeypatch.setattr("training_jobs.ml.isolated.run_isolated", fake_fold)
    scan.refresh_from_db()
    folds = cross_validation.stratified_folds(labels, 3, seed=scan.recipe["seed"])
    workdir = label_issues.cross_validation_dir(scan)
    workdir.mkdir(parents=True)
    held = np.flatnonzero(folds == 0)
    np.savez(workdir / "fold-1.npz", held=held, probs=np.full((len(held), 7), 1 / 7))
    done = cross_validation.cv_scan_run(scan_id=scan.pk, worker="test@host")
    assert done.status == "succeeded", done.human_readable_error
    assert [path.rsplit("/", 1)[1] for path in trained] == ["fold-2", "fold-3"]


def test_the_api_refuses_bad_folds_and_presets_on_their_field(alice, alice_api):
    dataset = flipped_dataset(alice)[0]
    url = f"/api/datasets/{dataset.pk}/label-issues/"
    for folds in (1, 11, "x"):
        refused = alice_api.post(url, {"model": "cross-validation", "folds": folds}, format="json")
        assert refused.status_code == 400 and list(refused.json()["fields"]) == ["folds"], refused.content
    refused = alice_api.post(url, {"model": "cross-validation", "preset": "fastest"}, format="json")
    assert refused.status_code == 400 and "valid presets are quick" in refused.json()["fields"]["preset"][0]
    refused = alice_api.post(f"{url}estimate/", {"epochs": 0}, format="json")
    assert refused.status_code == 400 and list(refused.json()["fields"]) == ["epochs"]
    assert not LabelIssueScan.objects.exists()


def test_another_users_dataset_is_not_found(alice, bob_api):
    dataset = flipped_dataset(alice)[0]
    url = f"/api/datasets/{dataset.pk}/label-issues/"
    assert bob_api.post(url, {"model": "cross-validation"}, format="json").status_code == 404
    assert bob_api.post(f"{url}estimate/", {}, format="json").status_code == 404


def test_a_scan_is_planned_with_the_preset_and_estimated_fold_by_fold(alice, alice_api):
    dataset = flipped_dataset(alice)[0]
    url = f"/api/datasets/{dataset.pk}/label-issues/"
    estimate = alice_api.post(f"{url}estimate/", {}, format="json").json()
    assert estimate["folds"] == 5 and estimate["label"] == "5-fold cross-validation (quick preset)"
    state = alice_api.post(url, {"model": "cross-validation"}, format="json").json()
    assert (state["status"], state["folds"], state["in_sample"], state["warning"]) == ("queued", 5, False, "")
    assert state["waiting_behind"] == []  # the training worker is free
    assert state["model"]["version"] == "5-fold cross-validation (quick preset)"
    assert state["estimated_seconds"] == estimate["estimated_seconds"] > 0
    scan = LabelIssueScan.objects.get()
    assert scan.recipe == {**validate_config(recipe_from("quick", {})), "occlusion_per_class": 0}
    # Five trainings on 4/5 of the faces each cost about what five runs cost, without the exports.
    five = cross_validation.cv_estimate(scan.recipe, dataset=dataset, folds=5)
    assert five.phases["exporting"] == 0 and five.seconds > cross_validation.cv_estimate(
        scan.recipe, dataset=dataset, folds=2).seconds
    page = alice_api.get(f"/datasets/{dataset.pk}/label-issues/")
    assert page.status_code in (200, 302)


def test_the_scan_task_is_sent_to_the_training_queue(alice, alice_api, monkeypatch, django_capture_on_commit_callbacks):
    from training_jobs import tasks as training_tasks

    sent = []
    monkeypatch.setattr(training_tasks.cross_validate_scan, "delay", lambda scan_id: sent.append(scan_id))
    dataset = flipped_dataset(alice)[0]
    with django_capture_on_commit_callbacks(execute=True):
        state = alice_api.post(f"/api/datasets/{dataset.pk}/label-issues/", {"model": "cross-validation"},
                               format="json").json()
    assert sent == [state["id"]]
    from ferweb.jobs import task_queue

    assert task_queue("training_jobs.tasks.cross_validate_scan") == "training"


def test_a_queued_scan_says_what_the_training_worker_is_busy_with(alice, alice_api, bob):
    from tests.training_web.conftest import busy_run

    busy_run(bob)
    dataset = flipped_dataset(alice)[0]
    url = f"/api/datasets/{dataset.pk}/label-issues/"
    state = alice_api.post(url, {"model": "cross-validation", "folds": 2}, format="json").json()
    behind = [{"kind": "run", "name": "", "mine": False, "seconds_left": 90}]  # bob's run, without its name
    assert state["waiting_behind"] == behind and alice_api.get(url).json()["waiting_behind"] == behind
    LabelIssueScan.objects.update(status="running")
    assert alice_api.get(url).json()["waiting_behind"] == []  # only while it waits
