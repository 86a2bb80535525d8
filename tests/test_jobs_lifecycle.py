"""One job lifecycle (ferweb/jobs.py): the same contract for every kind of background job.

Each test runs for dataset imports, labeling sets, inference jobs and training runs. Tasks are
not sent to a broker here: the kind's task `delay` only records the id, and `publish` records
the events, so a test sees exactly what a worker and a browser would have been told, and when.
"""
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from ferweb import jobs
from ferweb.datasets.label_issues import label_issue_scans
from ferweb.datasets.models import Dataset, LabelIssueScan
from ferweb.datasets.services import dataset_imports
from ferweb.labeling.models import LabelingSet
from ferweb.labeling.services import labeling_jobs
from inference.models import InferenceJob
from inference.services import inference_jobs
from training_jobs.models import TrainingRun
from training_jobs.services import training_runs

pytestmark = pytest.mark.django_db


def new_import(owner):
    return Dataset.objects.create(owner=owner, name="faces.zip")


def new_labeling_set(owner):
    return LabelingSet.objects.create(owner=owner, name="office party", status=LabelingSet.Status.PROCESSING)


def new_inference_job(owner):
    return InferenceJob.objects.create(owner=owner, kind=InferenceJob.Kind.IMAGES, source_name="photos.zip")


def new_run(owner):
    dataset = Dataset.objects.create(owner=owner, name="ready faces", status=Dataset.Status.READY)
    return TrainingRun.objects.create(owner=owner, dataset=dataset, architecture="light_residual", optimizer="nadam")


def new_label_issue_scan(owner):
    dataset = Dataset.objects.create(owner=owner, name="scanned faces", status=Dataset.Status.READY)
    return LabelIssueScan.objects.create(owner=owner, dataset=dataset, model_choice="default")


KINDS = {
    "dataset-import": (dataset_imports, new_import, Dataset.Status.READY),
    "labeling-set": (labeling_jobs, new_labeling_set, LabelingSet.Status.READY),
    "inference-job": (inference_jobs, new_inference_job, InferenceJob.Status.SUCCEEDED),
    "training-run": (training_runs, new_run, TrainingRun.Status.SUCCEEDED),
    "label-issue-scan": (label_issue_scans, new_label_issue_scan, LabelIssueScan.Status.SUCCEEDED),
}


class Kind:
    """One kind of job under test, with its sent tasks and published events recorded."""

    def __init__(self, lifecycle, make, done, owner, monkeypatch):
        self.lifecycle, self.make, self.done, self.owner = lifecycle, make, done, owner
        self.sent, self.published = [], []
        record(lifecycle, monkeypatch, self.sent, self.published)

    def new(self):
        return self.make(self.owner)

    def claimed(self, worker):
        job = self.new()
        assert self.lifecycle.claim(job.pk, worker=worker)
        return self.get(job)

    def get(self, job):
        return type(job).objects.get(pk=job.pk)

    def stale(self, job, settings):
        silent_since = timezone.now() - timedelta(seconds=settings.FERWEB_JOB_STALE_SECONDS + 5)
        type(job).objects.filter(pk=job.pk).update(heartbeat_at=silent_since)


def record(lifecycle, monkeypatch, sent, published):
    monkeypatch.setattr(import_string(lifecycle.task), "delay", lambda job_id: sent.append(job_id))
    monkeypatch.setattr(lifecycle, "publish", lambda job, message: published.append((job.pk, job.status, message)))


@pytest.fixture(params=list(KINDS))
def kind(request, alice, monkeypatch, settings):
    settings.FERWEB_JOB_MAX_ATTEMPTS = 2
    return Kind(*KINDS[request.param], alice, monkeypatch)


def test_every_kind_has_one_lifecycle_on_its_own_queue():
    assert {kind.model: kind.queue() for kind in jobs.KINDS} == {
        Dataset: "inference", LabelingSet: "inference", InferenceJob: "inference", TrainingRun: "training",
        LabelIssueScan: "inference",
    }


def test_a_queued_job_is_claimed_once(kind):
    job = kind.new()
    assert kind.lifecycle.claim(job.pk, worker="w1@host")
    assert not kind.lifecycle.claim(job.pk, worker="w2@host")
    job = kind.get(job)
    assert (job.status, job.worker, job.attempts) == (kind.lifecycle.running, "w1@host", 1)
    assert job.heartbeat_at is not None and job.started_at is not None and job.finished_at is None


def test_the_holder_heartbeats_and_nobody_else_does(kind):
    job = kind.claimed("w1@host")
    assert kind.lifecycle.heartbeat(job, progress=40.0)
    beaten = kind.get(job)
    assert beaten.heartbeat_at > job.heartbeat_at and beaten.progress == 40.0
    impostor = kind.get(job)
    impostor.worker = "w2@host"
    assert not kind.lifecycle.heartbeat(impostor, progress=90.0)
    assert kind.get(job).progress == 40.0


def test_the_holder_finishes_its_job_and_lets_go_of_it(kind):
    job = kind.claimed("w1@host")
    assert kind.lifecycle.finish(job, kind.done, progress=100.0)
    done = kind.get(job)
    assert (done.status, done.progress, done.worker, done.heartbeat_at) == (kind.done, 100.0, "", None)
    assert done.finished_at is not None
    assert not kind.lifecycle.finish(job, kind.lifecycle.failed, error="late")
    assert kind.get(job).status == kind.done


def test_a_silent_job_is_queued_again_with_its_attempt_counted(kind, settings, django_capture_on_commit_callbacks):
    silent = kind.claimed("gone@host")
    kind.stale(silent, settings)
    live = kind.claimed("busy@host")
    with django_capture_on_commit_callbacks(execute=True):
        assert kind.lifecycle.recover(worker="fresh@host") == {"requeued": [silent.pk], "failed": []}
    assert kind.sent == [silent.pk], "its task is sent again, once"
    requeued = kind.get(silent)
    assert (requeued.status, requeued.worker, requeued.heartbeat_at) == (kind.lifecycle.queued, "", None)
    assert kind.get(live).worker == "busy@host", "a live worker's job is left alone"
    assert kind.lifecycle.claim(silent.pk, worker="fresh@host")
    assert kind.get(silent).attempts == 2


def test_a_restarting_worker_gets_back_what_its_previous_life_held(kind, django_capture_on_commit_callbacks):
    job = kind.claimed("w1@host")  # a fresh heartbeat: only the name says that its worker died
    with django_capture_on_commit_callbacks(execute=True):
        assert kind.lifecycle.recover(worker="w1@host") == {"requeued": [job.pk], "failed": []}
    assert kind.sent == [job.pk] and kind.get(job).heartbeat_at is None


def test_a_redelivered_task_takes_back_the_job_its_dead_process_held(kind):
    job = kind.claimed("w1@host")
    assert not kind.lifecycle.claim(job.pk, worker="w1@host"), "a second message while a sibling process runs it"
    assert kind.lifecycle.claim(job.pk, worker="w1@host", redelivered=True)
    taken = kind.get(job)
    assert (taken.worker, taken.attempts) == ("w1@host", 2) and taken.heartbeat_at > job.heartbeat_at


def test_a_job_silent_too_long_is_taken_over_by_the_next_claim(kind, settings):
    job = kind.claimed("gone@host")
    kind.stale(job, settings)
    assert kind.lifecycle.claim(job.pk, worker="w2@host")
    assert (kind.get(job).worker, kind.get(job).attempts) == ("w2@host", 2)


def test_after_its_last_attempt_a_lost_job_fails_as_worker_lost(kind, settings, django_capture_on_commit_callbacks):
    job = kind.claimed("w1@host")
    type(job).objects.filter(pk=job.pk).update(attempts=settings.FERWEB_JOB_MAX_ATTEMPTS)
    with django_capture_on_commit_callbacks(execute=True):
        assert kind.lifecycle.recover(worker="w1@host") == {"requeued": [], "failed": [job.pk]}
    failed = kind.get(job)
    assert (failed.status, failed.error, failed.worker, failed.heartbeat_at) == (
        kind.lifecycle.failed, "worker_lost", "", None)
    assert "stopped 2 times because its worker ended (crashed, killed or out of memory)" in failed.human_readable_error
    assert failed.finished_at is not None and kind.sent == []
    assert kind.published == [(job.pk, kind.lifecycle.failed, failed.human_readable_error)]
    assert not kind.lifecycle.claim(job.pk, worker="w2@host", redelivered=True)


def test_a_redelivery_after_the_last_attempt_gives_the_job_up(kind, settings):
    job = kind.claimed("w1@host")
    type(job).objects.filter(pk=job.pk).update(attempts=settings.FERWEB_JOB_MAX_ATTEMPTS)
    assert not kind.lifecycle.claim(job.pk, worker="w1@host", redelivered=True)
    assert (kind.get(job).status, kind.get(job).error) == (kind.lifecycle.failed, "worker_lost")


def test_a_queued_or_running_job_is_cancelled_at_once(kind):
    cancelled = kind.lifecycle.cancelled or kind.lifecycle.failed
    queued = kind.new()
    assert kind.lifecycle.cancel(queued)
    assert (queued.status, queued.error, queued.human_readable_error) == (
        cancelled, "cancelled", "Cancelled before it started.")
    assert not kind.lifecycle.claim(queued.pk, worker="w1@host")
    assert not kind.lifecycle.cancel(queued), "an ended job is not cancelled again"

    holder = kind.claimed("w1@host")
    assert kind.lifecycle.cancel(kind.get(holder))
    assert not kind.lifecycle.heartbeat(holder), "the worker learns at its next heartbeat, and stops"
    assert not kind.lifecycle.finish(holder, kind.done)
    stopped = kind.get(holder)
    assert (stopped.status, stopped.error, stopped.human_readable_error) == (
        cancelled, "cancelled", "Cancelled while it ran.")
    assert stopped.worker == "" and stopped.heartbeat_at is None and stopped.finished_at is not None


def test_events_and_tasks_wait_for_the_commit(kind, django_capture_on_commit_callbacks):
    job = kind.new()
    with django_capture_on_commit_callbacks() as callbacks:
        kind.lifecycle.enqueue(job.pk)
        assert kind.lifecycle.claim(job.pk, worker="w1@host")
        kind.lifecycle.cancel(kind.get(job))
    assert kind.sent == [] and kind.published == [], "nothing leaves before the commit"
    for callback in callbacks:
        callback()
    assert kind.sent == [job.pk]
    assert kind.published == [
        (job.pk, kind.lifecycle.running, "started"),
        (job.pk, kind.lifecycle.cancelled or kind.lifecycle.failed, "cancelled"),
    ]


def test_a_rolled_back_change_tells_nobody(kind, django_capture_on_commit_callbacks):
    lost = kind.claimed("gone@host")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            assert kind.lifecycle.recover(worker="gone@host")["requeued"] == [lost.pk]
            kind.lifecycle.cancel(kind.new())
            raise RuntimeError("rolled back")
    assert callbacks == [] and kind.sent == [] and kind.published == []
    assert kind.get(lost).worker == "gone@host"


@pytest.mark.django_db(transaction=True)  # the handler closes stale connections, as at a worker's start
def test_a_starting_worker_recovers_only_the_kinds_of_its_queues(alice, monkeypatch):
    recorded = []
    for lifecycle in (dataset_imports, training_runs):
        record(lifecycle, monkeypatch, recorded, recorded)
    dataset = new_import(alice)
    run = new_run(alice)
    for lifecycle, job in ((dataset_imports, dataset), (training_runs, run)):
        assert lifecycle.claim(job.pk, worker="train@host")
    training_worker = SimpleNamespace(
        hostname="train@host", app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from={"training": None})))
    )
    jobs.recover_jobs_at_worker_start(sender=training_worker)
    assert TrainingRun.objects.get(pk=run.pk).status == TrainingRun.Status.QUEUED
    assert Dataset.objects.get(pk=dataset.pk).worker == "train@host", "imports go to the inference queue"
    assert jobs.recover_jobs(worker="train@host")["datasets.Dataset"]["requeued"] == [dataset.pk]
