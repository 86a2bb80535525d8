"""What a run may use and what a user may hold: the memory estimate, threads, quotas, fair turns."""
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import ROOT
from tests.training_web.conftest import make_ready_dataset
from training_jobs.ml import memory
from ferweb.datasets.models import LabelIssueScan
from training_jobs.models import TrainingRun

TINY = {"architecture": "light_residual", "epochs": 2, "batch_size": 16}
MB = 1024 * 1024


def post_run(client, dataset, **fields):
    return client.post("/api/runs/", {"dataset": dataset.pk, **TINY, **fields}, format="json")


def fill_storage(dataset, megabytes: int) -> None:
    """Bytes in the owner's dataset folder, as an import leaves them."""
    dataset.storage_dir.mkdir(parents=True, exist_ok=True)
    (dataset.storage_dir / "filler.bin").write_bytes(bytes(megabytes * MB))


@pytest.mark.django_db
class TestMemory:
    def test_a_batch_that_cannot_fit_is_refused_naming_the_largest_that_fits(self, alice_api, ready_dataset,
                                                                              settings):
        settings.FERWEB_TRAIN_MAX_MEMORY_MB = 4000
        response = post_run(alice_api, ready_dataset, architecture="hybrid_resnet34_50", batch_size=4096,
                            epochs=1000, num_threads=1024)
        assert response.status_code == 400, response.content
        body = response.json()
        fits = memory.max_batch_size(cap_bytes=4000 * MB, architecture="hybrid_resnet34_50",
                                     optimizer="nadam", momentum=0.9, faces=ready_dataset.num_items)
        assert 0 < fits < 4096
        assert body["code"] == "too_much_memory"
        assert f"the largest batch size that fits is {fits}." in body["detail"]
        assert "4,000 MB" in body["detail"] and "FERWEB_TRAIN_MAX_MEMORY_MB" in body["detail"]
        assert body["fields"]["batch_size"] == [body["detail"]]
        assert not TrainingRun.objects.exists()
        # The batch it names is taken; one more is not.
        assert post_run(alice_api, ready_dataset, architecture="hybrid_resnet34_50", batch_size=fits).status_code == 201
        over = post_run(alice_api, ready_dataset, architecture="hybrid_resnet34_50", batch_size=fits + 1)
        assert over.json()["code"] == "too_much_memory"

    def test_a_network_that_fits_at_no_batch_says_so(self, alice_api, ready_dataset, settings):
        settings.FERWEB_TRAIN_MAX_MEMORY_MB = 300  # below what torch alone takes
        body = post_run(alice_api, ready_dataset).json()
        assert body["code"] == "too_much_memory" and "not even a batch of 1 fits" in body["detail"]

    def test_the_estimate_grows_with_the_dataset_the_optimizer_and_the_batch(self):
        def estimate(**changes):
            return memory.estimate_bytes(**{"architecture": "resnet34", "batch_size": 128, **changes})

        assert estimate(faces=35_887) - estimate(faces=0) == pytest.approx(
            memory.MARGIN * memory.DATA_BYTES_PER_FACE * 35_887, rel=1e-6)
        params = memory.MEASURED["resnet34"].params
        assert estimate(optimizer="adam") - estimate(optimizer="sgd") == pytest.approx(memory.MARGIN * 4 * params, rel=1e-6)
        assert estimate(ema=True) > estimate()
        assert estimate(batch_size=256) > estimate(batch_size=128)
        assert estimate(batch_size=4096) > 20 * 1024 * MB, "the recipe that grew a worker to 22 GB"

    def test_num_threads_is_lowered_to_the_workers_cores_with_a_note(self, alice_api, ready_dataset, settings):
        settings.FERWEB_TRAIN_MAX_THREADS = 2
        response = post_run(alice_api, ready_dataset, num_threads=1024)
        assert response.status_code == 201, response.content
        run = TrainingRun.objects.get(pk=response.json()["id"])
        assert run.config["num_threads"] == 2
        note = "num_threads 1024 was lowered to 2, the training worker's cores (FERWEB_TRAIN_MAX_THREADS)."
        assert response.json()["notes"] == [note]
        assert alice_api.get(f"/api/runs/{run.pk}/").json()["metrics"]["notes"] == [note]
        within = post_run(alice_api, ready_dataset, num_threads=2)
        assert within.json()["notes"] == [] and TrainingRun.objects.get(pk=within.json()["id"]).config["num_threads"] == 2


def test_the_estimate_needs_no_torch():
    """The web process checks every new run: the estimate is a table, not a network."""
    code = ("import sys; from training_jobs.ml import memory; "
            "memory.max_batch_sizes(8 * 2**30, faces=35887); assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.django_db
class TestQuotas:
    def test_a_run_over_the_active_runs_quota_gets_429(self, alice_api, bob_api, ready_dataset, bob, settings):
        settings.FERWEB_QUOTA_ACTIVE_RUNS = 2
        first = post_run(alice_api, ready_dataset).json()["id"]
        post_run(alice_api, ready_dataset)
        refused = post_run(alice_api, ready_dataset)
        assert refused.status_code == 429
        assert refused.json()["code"] == "quota_exceeded"
        assert "2 training runs or cross-validation scans queued or running" in refused.json()["detail"]
        assert "FERWEB_QUOTA_ACTIVE_RUNS" in refused.json()["detail"]
        assert TrainingRun.objects.count() == 2
        # Bob has a quota of his own; a finished (here: cancelled) run frees a slot.
        assert post_run(bob_api, make_ready_dataset(bob)).status_code == 201
        alice_api.post(f"/api/runs/{first}/cancel/")
        assert post_run(alice_api, ready_dataset).status_code == 201

    def test_cross_validation_scans_count_as_runs(self, alice_api, alice, ready_dataset, settings):
        """Their folds train on the training worker: one quota for both."""
        settings.FERWEB_QUOTA_ACTIVE_RUNS = 1
        assert post_run(alice_api, ready_dataset).status_code == 201
        scan = alice_api.post(f"/api/datasets/{ready_dataset.pk}/label-issues/",
                              {"model": "cross-validation", "folds": 2}, format="json")
        assert scan.status_code == 429 and scan.json()["code"] == "quota_exceeded"
        assert not LabelIssueScan.objects.exists()

        TrainingRun.objects.update(status="cancelled")
        scan = alice_api.post(f"/api/datasets/{ready_dataset.pk}/label-issues/",
                              {"model": "cross-validation", "folds": 2}, format="json")
        assert scan.status_code == 202, scan.content
        assert post_run(alice_api, ready_dataset).status_code == 429
        assert alice_api.get("/api/runs/limits/").json()["quotas"]["active_runs"]["used"] == 1

    def test_staff_have_no_quotas(self, carol_api, ready_dataset, settings):
        settings.FERWEB_QUOTA_ACTIVE_RUNS = 1
        settings.FERWEB_QUOTA_STORAGE_MB = 1
        fill_storage(ready_dataset, 2)
        assert [post_run(carol_api, ready_dataset).status_code for _ in range(3)] == [201, 201, 201]

    def test_a_job_over_the_active_jobs_quota_gets_429(self, alice_api, model_file, settings):
        settings.FERWEB_QUOTA_ACTIVE_JOBS = 1

        def post_job():
            upload = SimpleUploadedFile("clip.mp4", b"not decoded until a worker takes it")
            return alice_api.post("/api/jobs/", {"file": upload}, format="multipart")

        assert post_job().status_code == 201
        refused = post_job()
        assert refused.status_code == 429
        assert refused.json()["code"] == "quota_exceeded" and "FERWEB_QUOTA_ACTIVE_JOBS" in refused.json()["detail"]

    def test_an_upload_over_the_storage_quota_gets_413_and_nothing_is_kept(self, alice_api, settings):
        from ferweb.datasets.models import Dataset

        settings.FERWEB_QUOTA_STORAGE_MB = 1
        upload = SimpleUploadedFile("big.zip", bytes(2 * MB))
        response = alice_api.post("/api/datasets/", {"name": "big", "file": upload}, format="multipart")
        assert response.status_code == 413
        body = response.json()
        assert body["code"] == "quota_exceeded"
        assert "FERWEB_QUOTA_STORAGE_MB" in body["detail"] and "1 MB" in body["detail"]
        assert not Dataset.objects.exists()
        assert not any(Path(settings.MEDIA_ROOT).rglob("big*.zip"))

    def test_photos_for_labeling_count_against_storage(self, alice_api, settings):
        settings.FERWEB_QUOTA_STORAGE_MB = 1
        photo = SimpleUploadedFile("party.jpg", bytes(2 * MB))
        response = alice_api.post("/api/labeling/sets/", {"name": "party", "files": [photo]}, format="multipart")
        assert response.status_code == 413 and response.json()["code"] == "quota_exceeded"

    def test_a_full_storage_refuses_new_runs_with_400(self, alice_api, ready_dataset, settings):
        settings.FERWEB_QUOTA_STORAGE_MB = 1
        fill_storage(ready_dataset, 2)
        response = post_run(alice_api, ready_dataset)
        assert response.status_code == 400
        assert response.json()["code"] == "quota_exceeded" and "FERWEB_QUOTA_STORAGE_MB" in response.json()["detail"]

    def test_storage_counts_everything_the_user_keeps_and_nothing_of_others(self, alice, bob, ready_dataset):
        from ferweb.quotas import storage_used

        before = storage_used(alice)
        fill_storage(ready_dataset, 1)
        run = TrainingRun.objects.create(owner=alice, dataset=ready_dataset, architecture="light_residual",
                                         optimizer="nadam")
        run.workdir.mkdir(parents=True)
        (run.workdir / "last.pt").write_bytes(bytes(MB))
        assert storage_used(alice) - before == 2 * MB
        assert storage_used(bob) == 0

    def test_the_run_page_shows_the_quota(self, client, alice, ready_dataset, settings):
        settings.FERWEB_QUOTA_ACTIVE_RUNS = 0
        client.force_login(alice)
        form = {"dataset": ready_dataset.pk, **TINY}
        assert client.post("/runs/new/", form).status_code == 302
        settings.FERWEB_QUOTA_ACTIVE_RUNS = 1
        page = client.post("/runs/new/", form)
        assert page.status_code == 200 and "FERWEB_QUOTA_ACTIVE_RUNS" in page.content.decode()


@pytest.mark.django_db
class TestLimitsEndpoint:
    def test_it_lists_the_workers_limits_and_the_users_quotas(self, alice_api, ready_dataset, settings):
        settings.FERWEB_TRAIN_MAX_MEMORY_MB = 8000
        settings.FERWEB_TRAIN_MAX_THREADS = 4
        settings.FERWEB_QUOTA_ACTIVE_RUNS = 3
        post_run(alice_api, ready_dataset)
        body = alice_api.get("/api/runs/limits/").json()
        training = body["training"]
        assert (training["memory_mb"], training["cores"], training["faces"]) == (8000, 4, 35_887)
        assert training["max_batch_size"] == memory.max_batch_sizes(8000 * MB, faces=35_887)
        assert set(training["max_batch_size"]) == set(memory.MEASURED)
        assert training["max_batch_size"]["light_residual"] > training["max_batch_size"]["hybrid_resnet34_50"] > 0
        quotas = body["quotas"]
        assert quotas["exempt"] is False
        assert quotas["active_runs"] == {"limit": 3, "used": 1, "setting": "FERWEB_QUOTA_ACTIVE_RUNS"}
        assert quotas["storage_mb"]["setting"] == "FERWEB_QUOTA_STORAGE_MB"
        sized = alice_api.get(f"/api/runs/limits/?dataset={ready_dataset.pk}").json()["training"]
        assert sized["faces"] == ready_dataset.num_items

    def test_another_users_dataset_is_not_found(self, bob_api, ready_dataset):
        response = bob_api.get(f"/api/runs/limits/?dataset={ready_dataset.pk}")
        assert response.status_code == 404

    def test_the_schema_documents_the_limits_and_the_refusals(self, alice_api):
        schema = alice_api.get("/api/schema/?format=json").json()
        assert "/api/runs/limits/" in schema["paths"]
        create = schema["paths"]["/api/runs/"]["post"]["responses"]
        assert "too_much_memory" in create["400"]["description"]
        assert "quota_exceeded" in create["429"]["description"]
        assert create["429"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


@pytest.mark.django_db
class TestFairTurns:
    def finish(self, run_id):
        TrainingRun.objects.filter(pk=run_id).update(status="succeeded")

    def test_a_second_user_goes_second_not_fourth(self, alice, bob, alice_api, bob_api, ready_dataset):
        from training_jobs.services import run_claim_next

        alices = [post_run(alice_api, ready_dataset).json()["id"] for _ in range(3)]
        bobs = post_run(bob_api, make_ready_dataset(bob)).json()["id"]
        order = []
        while (run := run_claim_next(worker="w@test")) is not None:
            order.append(run.pk)
            self.finish(run.pk)
        assert order == [alices[0], bobs, alices[1], alices[2]]

    def test_each_queued_run_is_claimed_once_and_cancelled_ones_never(self, alice, bob, alice_api, bob_api,
                                                                      ready_dataset):
        from training_jobs.services import run_claim_next

        first, second = (post_run(alice_api, ready_dataset).json()["id"] for _ in range(2))
        bobs = post_run(bob_api, make_ready_dataset(bob)).json()["id"]
        alice_api.post(f"/api/runs/{second}/cancel/")
        # Claimed runs stay running while the others are taken: nothing is taken twice.
        claimed = [run_claim_next(worker=f"w{i}@test") for i in range(3)]
        assert [run.pk if run else None for run in claimed] == [first, bobs, None]
        assert TrainingRun.objects.get(pk=second).status == "cancelled"
        assert TrainingRun.objects.get(pk=first).attempts == 1

    def test_a_user_whose_turn_is_longest_ago_goes_first(self, alice, bob, alice_api, bob_api, ready_dataset):
        from datetime import timedelta

        from django.utils import timezone

        from training_jobs.selectors import run_next_fair_id

        bob_dataset = make_ready_dataset(bob)
        # Bob trained yesterday, alice an hour ago: bob's newer run goes before alice's older one.
        for owner, dataset, hours in ((bob, bob_dataset, 24), (alice, ready_dataset, 1)):
            TrainingRun.objects.create(owner=owner, dataset=dataset, architecture="light_residual",
                                       optimizer="nadam", status="succeeded",
                                       started_at=timezone.now() - timedelta(hours=hours))
        post_run(alice_api, ready_dataset)
        bobs = post_run(bob_api, bob_dataset).json()["id"]
        assert run_next_fair_id() == bobs
