"""Celery interface to the training services: tasks take ids (or a few plain values) and call one service."""
import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import close_old_connections

from training_jobs import cross_validation, estimates, services

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="training_jobs.tasks.train_run", acks_late=True)
def train_run(self, run_id: int) -> str:
    """Every queued run sends one message, but a message runs the *fair* next run (round-robin by
    user, see selectors.run_next_fair_id), which need not be `run_id`. Each delivery claims at most
    one queued run and every queued run has a message, so each still runs exactly once; a message
    that finds nothing queued (its run was cancelled, or taken by an earlier message) does nothing."""
    run = services.run_execute_next(worker=self.request.hostname or "")
    return f"run {run.pk} {run.status}" if run else f"nothing queued (woken for run {run_id})"


@shared_task(bind=True, name="training_jobs.tasks.cross_validate_scan", acks_late=True)
def cross_validate_scan(self, scan_id: int) -> str | None:
    """A label-error scan by cross-validation: the service claims it (or returns if it is gone, taken
    or cancelled), trains and scores its folds, and records the outcome."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    scan = cross_validation.cv_scan_run(scan_id=scan_id, worker=self.request.hostname or "unknown",
                                        redelivered=redelivered)
    return scan.status if scan else None


@shared_task(name="training_jobs.tasks.measure_throughput", acks_late=True)
def measure_throughput(architecture: str, batch_size: int, bf16: bool) -> str:
    """Measure one combination on this worker's device, unless it is measured already (an estimate asked)."""
    row = estimates.throughput_measure(architecture=architecture, batch_size=batch_size, bf16=bf16)
    return str(row) if row else f"measuring {architecture} at batch {batch_size} failed"


@worker_ready.connect
def measure_at_worker_start(sender=None, **kwargs):
    """A training worker on a device without a measurement of the quick preset takes one (a few
    seconds, once per device) before its first run, so that estimates rest on this machine."""
    try:
        queues = set(sender.app.amqp.queues.consume_from)
    except AttributeError:
        queues = set()
    if "training" not in queues or not estimates.measuring_enabled():
        return
    close_old_connections()
    row = estimates.throughput_measure_at_worker_start()
    if row is not None:
        logger.info("training throughput on this device: %s", row)
