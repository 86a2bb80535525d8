"""Duration estimates without a worker: the arithmetic on measured throughputs, POST /api/runs/estimate/,
a queued run's estimated_seconds, and the clock that turns a running run's events into percent and ETA."""
import pytest
from django.core.cache import cache

from fercore import catalogue
from tests.test_api_shapes import check, openapi  # noqa: F401 - openapi is a fixture
from tests.training_web.conftest import make_ready_dataset
from training_jobs import estimates, services
from training_jobs.models import Throughput, TrainingRun

CPU = "cpu: Test CPU, 2 threads"
SPLITS = {"train": 1000, "val": 200, "test": 300}
CLASSES_PRESENT = {c: 10 for c in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")}


def recipe(**fields):
    return services.validate_config({"architecture": "fast_resnet", "batch_size": 100, "epochs": 3,
                                     "early_stopping_patience": 0, "occlusion_per_class": 2, "occlusion_patch": 8,
                                     **fields})


def measured(architecture="fast_resnet", batch_size=100, train=500.0, evaluation=2000.0, device=CPU, bf16=False,
             source="benchmark"):
    return Throughput.objects.create(device=device, architecture=architecture, batch_size=batch_size, bf16=bf16,
                                     train_images_per_s=train, eval_images_per_s=evaluation, source=source)


def estimate_of(config, **counts):
    return estimates.estimate_for(config, split_counts=counts.get("splits", SPLITS),
                                  class_counts=counts.get("classes", CLASSES_PRESENT), num_items=1500)


@pytest.mark.django_db
class TestTheArithmetic:
    def test_a_measured_combination_adds_up_phase_by_phase(self):
        measured()
        estimate = estimate_of(recipe())
        phases = estimate.phases
        assert phases["training"] == pytest.approx(3 * (1000 / 500 + 200 / 2000))  # batches + validation, per epoch
        assert phases["evaluating"] == pytest.approx(estimates.EVALUATION_OVERHEAD_S + (200 + 300) / 2000)
        # 2 faces of each of 7 classes, 11 x 11 positions of an 8-pixel square at stride 4, plus the face itself.
        assert phases["occlusion_maps"] == pytest.approx(2 * 7 * (121 + 1) / 2000)
        assert phases["preparing_data"] == pytest.approx(estimates.DEFAULT_PREPARE_S + 1500 * estimates.PREPARE_S_PER_FACE)
        macs = catalogue.get("fast_resnet").macs
        assert phases["exporting"] == pytest.approx(estimates.DEFAULT_EXPORT_S + estimates.EXPORT_S_PER_MAC * macs)
        assert estimate.seconds == pytest.approx(sum(phases.values()))
        assert estimate.measured and CPU in estimate.basis and "500 images/s" in estimate.basis

    def test_mirrored_faces_double_every_evaluation_and_a_batch_cap_shortens_the_epochs(self):
        measured()
        estimate = estimate_of(recipe(tta_flip=True, max_batches_per_epoch=5))
        assert estimate.phases["training"] == pytest.approx(3 * (500 / 500 + 2 * 200 / 2000))
        assert estimate.phases["evaluating"] == pytest.approx(estimates.EVALUATION_OVERHEAD_S + 2 * 500 / 2000)

    def test_without_a_validation_split_it_holds_out_a_share_of_training(self):
        measured()
        estimate = estimate_of(recipe(validation_fraction=0.2), splits={"Training": 1000})
        # 800 to train on, 200 held out for validation, which is also the test split.
        assert estimate.phases["training"] == pytest.approx(3 * (800 / 500 + 200 / 2000))
        assert estimate.phases["evaluating"] == pytest.approx(estimates.EVALUATION_OVERHEAD_S + 400 / 2000)

    def test_early_stopping_makes_it_an_upper_bound_and_says_so(self):
        measured()
        assert "upper bound" in estimate_of(recipe(epochs=50, early_stopping_patience=5)).basis
        assert "upper bound" not in estimate_of(recipe()).basis

    def test_an_unmeasured_network_is_scaled_from_the_nearest_measured_one_by_multiply_adds(self):
        measured(architecture="resnet50", batch_size=100, train=40.0, device="cpu: Other CPU, 8 threads")
        measured()  # the worker's device: the one measured last
        estimate = estimate_of(recipe(architecture="resnet50"))
        scale = catalogue.get("fast_resnet").macs / catalogue.get("resnet50").macs
        assert estimate.phases["training"] == pytest.approx(3 * (1000 / (500 * scale) + 200 / (2000 * scale)))
        assert not estimate.measured
        assert estimate.basis.startswith(f"Approximate: fast_resnet measured at 500 images/s on {CPU}, scaled by "
                                         "multiply-adds")

    def test_another_batch_size_of_the_same_network_is_nearer_than_another_network(self):
        measured(batch_size=32, train=300.0)
        measured(architecture="compact_resnet", batch_size=100, train=100.0)
        estimate = estimate_of(recipe())
        assert not estimate.measured and "fast_resnet measured at batch 32" in estimate.basis
        assert estimate.phases["training"] == pytest.approx(3 * (1000 / 300 + 200 / 2000))

    def test_with_nothing_measured_it_still_answers_from_the_networks_size(self):
        estimate = estimate_of(recipe())
        macs = catalogue.get("fast_resnet").macs
        assert estimate.phases["training"] == pytest.approx(
            3 * (1000 * macs / estimates.DEFAULT_TRAIN_MACS_PER_S + 200 * macs / estimates.DEFAULT_EVAL_MACS_PER_S))
        assert not estimate.measured and "has not measured" in estimate.basis

    def test_the_device_is_the_one_measured_last(self):
        row = measured(train=500.0)
        measured(train=50.0, device="cpu: Old CPU, 1 threads")
        row.train_images_per_s = 600.0
        row.save()  # refreshed: now the newest
        assert estimates.worker_device() == CPU
        assert estimate_of(recipe()).rates.train_images_per_s == 600.0

    def test_earlier_runs_give_the_time_to_prepare_and_to_export(self, alice):
        measured()
        dataset = make_ready_dataset(alice, per_class=4)
        for prepare, export, architecture in ((4.0, 2.0, "fast_resnet"), (6.0, 3.0, "fast_resnet"), (5.0, 30.0, "resnet50")):
            TrainingRun.objects.create(owner=alice, dataset=dataset, architecture=architecture, optimizer="nadam",
                                       status="succeeded", metrics={"phase_seconds": {
                                           "preparing_data": prepare, "exporting": export}})
        estimate = estimate_of(recipe())
        assert estimate.phases["preparing_data"] == 5.0  # the median of every run's
        assert estimate.phases["exporting"] == 2.5  # the median of fast_resnet's own


@pytest.mark.django_db
class TestRefreshFromRuns:
    def test_a_runs_epochs_refresh_its_combination(self, alice):
        measured(train=500.0, evaluation=2000.0)
        dataset = make_ready_dataset(alice, per_class=4)
        run = TrainingRun.objects.create(owner=alice, dataset=dataset, architecture="fast_resnet", optimizer="nadam",
                                         config=recipe(num_threads=0))
        history = [{"epoch": i, "train_images_per_s": rate, "val_images_per_s": 1000.0 + rate}
                   for i, rate in enumerate([300.0, 420.0, 400.0], start=1)]
        row = estimates.throughput_from_epochs(run.config, device=CPU, history=history, source=f"run {run.pk}")
        assert (row.train_images_per_s, row.eval_images_per_s, row.source) == (400.0, 1400.0, f"run {run.pk}")
        assert Throughput.objects.count() == 1

    def test_runs_that_measure_something_else_leave_it_alone(self, alice, monkeypatch):
        monkeypatch.setattr(estimates.os, "cpu_count", lambda: 64)
        dataset = make_ready_dataset(alice, per_class=4)
        history = [{"epoch": 1, "train_images_per_s": 300.0, "val_images_per_s": 900.0}]
        for config in (recipe(num_threads=1), recipe(num_threads=0, teacher_checkpoint="/x/best.pt")):
            run = TrainingRun.objects.create(owner=alice, dataset=dataset, architecture="fast_resnet",
                                             optimizer="nadam", config=config)
            assert estimates.throughput_from_epochs(run.config, device="cpu: Many cores, 64 threads", history=history,
                                                    source=f"run {run.pk}") is None
        run = TrainingRun.objects.create(owner=alice, dataset=dataset, architecture="fast_resnet", optimizer="nadam",
                                         config=recipe(num_threads=0))
        frozen = [{**history[0], "frozen_backbone": True}]
        assert estimates.throughput_from_epochs(run.config, device=CPU, history=frozen, source=f"run {run.pk}") is None
        assert not Throughput.objects.exists()


@pytest.fixture(autouse=True)
def _not_measuring(settings):
    settings.FERWEB_MEASURE_THROUGHPUT = False


@pytest.fixture
def measuring(settings, monkeypatch):
    """Measuring on: the measure_throughput messages the web would send, caught at the broker's door."""
    from training_jobs import tasks

    settings.FERWEB_MEASURE_THROUGHPUT = True
    sent = []
    monkeypatch.setattr(tasks.measure_throughput, "delay", lambda *args: sent.append(args))
    cache.delete_many([estimates._pending_key("resnet50", 64, False), estimates._pending_key("fast_resnet", 64, False)])
    yield sent
    cache.delete_many([estimates._pending_key("resnet50", 64, False), estimates._pending_key("fast_resnet", 64, False)])


def post_estimate(client, dataset, **fields):
    return client.post("/api/runs/estimate/", {"dataset": dataset.pk, "epochs": 2, "batch_size": 64, **fields},
                       format="json")


@pytest.mark.django_db
class TestEstimateApi:
    def test_a_measured_recipe_is_estimated_from_its_measurement(self, openapi, alice, alice_api, measuring):  # noqa: F811
        dataset = make_ready_dataset(alice, per_class=20)
        measured(batch_size=64, train=250.0, evaluation=1000.0)
        response = post_estimate(alice_api, dataset, architecture="fast_resnet", occlusion_per_class=0)
        body = check(openapi, response, "/api/runs/estimate/", "post")
        assert response.status_code == 200 and body["measured"] is True
        train, val = dataset.split_counts["train"], dataset.split_counts["val"]
        assert body["phases"]["training"] == pytest.approx(2 * (train / 250 + val / 1000), abs=0.1)
        assert body["phases"]["occlusion_maps"] == 0
        assert body["estimated_seconds"] == pytest.approx(sum(body["phases"].values()), abs=0.3)
        assert CPU in body["basis"] and "250 images/s" in body["basis"]
        assert measuring == [] and not TrainingRun.objects.exists()

    def test_an_unmeasured_recipe_is_approximate_and_gets_measured_once(self, openapi, alice, alice_api, measuring,  # noqa: F811
                                                                        django_capture_on_commit_callbacks):
        dataset = make_ready_dataset(alice, per_class=20)
        measured(batch_size=64, train=250.0)
        with django_capture_on_commit_callbacks(execute=True):
            first = check(openapi, post_estimate(alice_api, dataset, architecture="resnet50"), "/api/runs/estimate/",
                          "post")
            second = post_estimate(alice_api, dataset, architecture="resnet50").json()
        assert first["measured"] is False and second["measured"] is False
        assert "scaled by multiply-adds" in first["basis"] and "measuring resnet50 at batch 64 now" in first["basis"]
        assert measuring == [("resnet50", 64, False)], "asked for once, however often the form asks"

    def test_with_nothing_measured_it_answers_and_says_the_worker_has_not_measured(self, alice, alice_api):
        dataset = make_ready_dataset(alice, per_class=20)
        body = post_estimate(alice_api, dataset, architecture="fast_resnet").json()
        assert body["measured"] is False and body["estimated_seconds"] > 0
        assert "has not measured" in body["basis"]

    def test_a_preset_with_overrides_is_estimated_as_it_would_run(self, alice, alice_api):
        dataset = make_ready_dataset(alice, per_class=20)
        short = post_estimate(alice_api, dataset, preset="quick", epochs=1).json()
        longer = post_estimate(alice_api, dataset, preset="quick", epochs=4).json()
        assert longer["phases"]["training"] == pytest.approx(4 * short["phases"]["training"], rel=0.01)

    def test_an_invalid_recipe_is_refused_as_a_run_would_be(self, openapi, alice, bob, alice_api, bob_api):  # noqa: F811
        dataset = make_ready_dataset(alice, per_class=20)
        refused = post_estimate(alice_api, dataset, architecture="vgg99", epochs=0)
        body = check(openapi, refused, "/api/runs/estimate/", "post")
        assert refused.status_code == 400 and body["code"] == "invalid"
        assert "fast_resnet" in body["fields"]["architecture"][0] and "between 1 and 1000" in body["fields"]["epochs"][0]
        assert post_estimate(bob_api, dataset).status_code == 400, "another user's dataset does not exist for bob"
        assert post_estimate(alice_api, dataset, batch_size=4096, architecture="hybrid_resnet34_50",
                             optimizer="nadam").json()["code"] in ("too_much_memory", "invalid")
        assert not TrainingRun.objects.exists()


@pytest.mark.django_db
def test_a_queued_run_carries_its_estimate(openapi, alice, alice_api):  # noqa: F811
    dataset = make_ready_dataset(alice, per_class=20)
    measured(architecture="light_residual", batch_size=16, train=100.0, evaluation=400.0)
    created = alice_api.post("/api/runs/", {"dataset": dataset.pk, "architecture": "light_residual", "epochs": 2,
                                            "batch_size": 16}, format="json")
    assert created.status_code == 201, created.content
    estimate = alice_api.post("/api/runs/estimate/", {"dataset": dataset.pk, "architecture": "light_residual",
                                                      "epochs": 2, "batch_size": 16}, format="json").json()
    run = check(openapi, alice_api.get(f"/api/runs/{created.json()['id']}/"), "/api/runs/{id}/")
    assert run["estimated_seconds"] == pytest.approx(estimate["estimated_seconds"], abs=0.2)
    assert created.json()["estimated_seconds"] == run["estimated_seconds"]
    assert run["progress"] == {"percent": 0.0, "phase": "queued", "eta_seconds": None}
    listed = check(openapi, alice_api.get("/api/runs/"), "/api/runs/")
    assert listed[0]["progress"]["phase"] == "queued" and listed[0]["estimated_seconds"] == run["estimated_seconds"]
    alice_api.post(f"/api/runs/{run['id']}/cancel/")
    assert alice_api.get(f"/api/runs/{run['id']}/").json()["progress"] == {"percent": 0.0, "phase": "",
                                                                          "eta_seconds": None}


# ---------------------------------------------------------------- the clock of a running run


def plan(**phases):
    seconds = {"preparing_data": 10.0, "training": 100.0, "evaluating": 10.0, "occlusion_maps": 10.0,
               "exporting": 10.0, **phases}
    # 2 epochs of 10 batches: 45 s of batches and 5 s of validation each.
    return estimates.Estimate(phases=seconds, basis="", measured=True, epochs=2, batches_per_epoch=10,
                              train_seconds_per_epoch=45.0, val_seconds_per_epoch=5.0)


def batch(epoch, number):
    return {"type": "run.batch", "epoch": epoch, "epochs": 2, "batch": number, "batches": 10}


class TestRunClock:
    def test_it_counts_down_from_the_estimate_before_the_first_batch(self):
        clock = estimates.RunClock(plan(), now=0.0)
        assert clock.progress(4.0) == {"percent": pytest.approx(100 * 4 / 140, abs=0.01), "phase": "preparing_data",
                                       "eta_seconds": 136.0}

    def test_the_first_batches_set_the_pace_for_every_batch_validation_and_evaluation_to_come(self):
        clock = estimates.RunClock(plan(), now=0.0)
        clock.enter("training", 10.0)
        clock.batch(batch(1, 1), 11.0)
        clock.batch(batch(1, 3), 21.0)  # 5 s a batch where 4.5 s were estimated
        progress = clock.progress(21.0)
        pace = 5.0 / 4.5
        left = 17 * 5.0 + 2 * 5.0 * pace + (10.0 * pace + 10.0 * pace + 10.0)
        assert progress["phase"] == "training" and progress["eta_seconds"] == pytest.approx(left, abs=0.1)
        assert progress["percent"] == pytest.approx(100 * (10 + 100 * 3 / 20) / 140, abs=0.01)

    def test_the_validation_pass_between_epochs_is_not_taken_for_training_time(self):
        clock = estimates.RunClock(plan(), now=0.0)
        clock.enter("training", 0.0)
        clock.batch(batch(1, 2), 10.0)
        clock.batch(batch(1, 10), 50.0)
        clock.epoch({"type": "run.epoch", "epoch": 1, "epochs": 2, "val_seconds": 30.0}, 80.0)
        clock.batch(batch(2, 2), 90.0)
        clock.batch(batch(2, 4), 100.0)
        assert clock.seconds_per_batch() == 5.0
        # 6 batches, one validation pass as long as the last, then the later phases at the pace.
        assert clock.eta(100.0) == pytest.approx(6 * 5.0 + 30.0 + (10 + 10) * 5.0 / 4.5 + 10.0)

    def test_the_phases_after_training_never_read_zero_and_the_percent_waits_for_the_end(self):
        clock = estimates.RunClock(plan(), now=0.0)
        clock.batch(batch(2, 10), 100.0)
        clock.epoch({"type": "run.epoch", "epoch": 2, "epochs": 2, "val_seconds": 5.0}, 105.0)
        clock.enter("evaluating", 105.0)
        assert clock.eta(106.0) == pytest.approx(9.0 + 20.0)
        clock.enter("occlusion_maps", 110.0)
        clock.enter("exporting", 120.0)
        late = clock.progress(500.0)  # far over its estimate
        assert late["eta_seconds"] >= 1.0 and late["percent"] < 100
        assert late["percent"] == pytest.approx(100 * (130 + 0.95 * 10) / 140, abs=0.01)
        assert clock.phase_seconds(500.0)["exporting"] == 380.0
        assert set(clock.phase_seconds(500.0)) == set(estimates.PHASES)

    def test_the_percent_never_goes_back(self):
        clock = estimates.RunClock(plan(), now=0.0)
        seen = [clock.percent(t) for t in (1.0, 5.0, 9.0)]
        clock.enter("training", 30.0)  # preparing took three times its estimate
        clock.batch(batch(1, 1), 31.0)
        seen.append(clock.percent(31.0))
        assert seen == sorted(seen)
