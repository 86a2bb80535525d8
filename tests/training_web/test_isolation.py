"""Each run trains in a child process of the worker: out of memory fails the run, not the worker."""
import os
import re
import signal

import psutil
import pytest

from tests.training_web.conftest import make_ready_dataset
from tests.training_web.test_training import TINY, run_status, wait_for
from training_jobs.ml import memory
from training_jobs.models import TrainingRun

pytestmark = pytest.mark.worker
MB = 1024 * 1024


@pytest.mark.django_db(transaction=True)
def test_a_run_over_the_memory_cap_fails_alone_and_the_worker_runs_the_next(worker_process, alice, alice_api,
                                                                            monkeypatch):
    # The cap is the worker's: this process (the web side) keeps the default and accepts both runs.
    monkeypatch.setenv("FERWEB_TRAIN_MAX_MEMORY_MB", "1000")
    worker = worker_process(queues=("training",))
    dataset = make_ready_dataset(alice, per_class=60)
    big = alice_api.post("/api/runs/", {"dataset": dataset.pk, **TINY, "architecture": "adapted_residual",
                                        "batch_size": 256, "epochs": 2}, format="json").json()["id"]
    small = alice_api.post("/api/runs/", {"dataset": dataset.pk, **TINY, "epochs": 2, "batch_size": 8},
                           format="json").json()["id"]

    wait_for(lambda: run_status(small) in ("succeeded", "failed"), timeout=180, interval=0.5, what="both runs")
    run = TrainingRun.objects.get(pk=big)
    assert (run.status, run.error) == ("failed", "out_of_memory"), run.human_readable_error
    fits = memory.max_batch_size(cap_bytes=1000 * MB, architecture="adapted_residual", optimizer="nadam",
                                 momentum=0.9, faces=dataset.num_items)
    assert 0 < fits < 128
    message = run.human_readable_error
    assert message.startswith("Ran out of memory at batch size 256 (the training process reached ")
    assert "the worker may use 1,000 MB, FERWEB_TRAIN_MAX_MEMORY_MB" in message
    assert f"try {fits}, or a lighter architecture." in message
    reached = int(re.search(r"reached ([\d,]+) MB", message).group(1).replace(",", ""))
    assert reached > 1000
    assert run.attempts == 1, "never queued again"

    # The same worker lived on and trained the next run.
    assert worker.proc.poll() is None
    run = TrainingRun.objects.get(pk=small)
    assert run.status == "succeeded", (run.error, run.human_readable_error)
    assert run.model_versions.count() == 1 and len(run.history) == 2
    assert "WorkerLostError" not in worker.output()


@pytest.mark.django_db(transaction=True)
def test_the_training_process_dies_with_its_worker(worker_process, alice, alice_api):
    worker = worker_process(queues=("training",))
    dataset = make_ready_dataset(alice, per_class=60)
    run_id = alice_api.post("/api/runs/", {"dataset": dataset.pk, **TINY, "epochs": 200, "batch_size": 4},
                            format="json").json()["id"]
    wait_for(lambda: TrainingRun.objects.get(pk=run_id).last_batch, timeout=90, what="batch progress")
    children = psutil.Process(worker.proc.pid).children(recursive=True)
    assert children, "the run trains in a child process"

    os.kill(worker.proc.pid, signal.SIGKILL)  # the worker alone, not its process group
    worker.proc.wait(10)
    _gone, alive = psutil.wait_procs(children, timeout=15)
    assert not alive, f"left behind: {alive}"
    # The run waits for the next worker start, which resumes it (test_training covers the resume).
    assert run_status(run_id) == "running"
    TrainingRun.objects.filter(pk=run_id).update(cancel_requested=True)


def test_a_child_killed_by_the_kernel_reads_as_out_of_memory():
    from training_jobs.ml.isolated import _died

    assert _died(-signal.SIGKILL).code == "out_of_memory"
    assert _died(-signal.SIGSEGV).code == "internal_error" and "signal 11" in _died(-signal.SIGSEGV).message
    assert _died(3).code == "internal_error" and "exited with code 3" in _died(3).message
