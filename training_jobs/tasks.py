"""Celery interface to the training services: tasks take ids and call one service."""
import logging

from celery import shared_task
from celery.signals import worker_ready

from training_jobs import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="training_jobs.tasks.train_run", acks_late=True)
def train_run(self, run_id: int) -> str:
    """Every queued run sends one message, but a message runs the *fair* next run (round-robin by
    user, see selectors.run_next_fair_id), which need not be `run_id`. Each delivery claims at most
    one queued run and every queued run has a message, so each still runs exactly once; a message
    that finds nothing queued (its run was cancelled, or taken by an earlier message) does nothing."""
    run = services.run_execute_next(worker=self.request.hostname or "")
    return f"run {run.pk} {run.status}" if run else f"nothing queued (woken for run {run_id})"


@worker_ready.connect
def recover_lost_runs(sender=None, **kwargs):
    """A worker that starts re-queues runs its previous life (same name) left running,
    and runs whose worker stopped sending heartbeats, wherever it ran."""
    hostname = getattr(sender, "hostname", None)
    if not hostname:
        return
    try:
        requeued = services.runs_recover(worker=hostname)
    except Exception:  # noqa: BLE001 - a recovery problem must not keep the worker down
        logger.exception("recovering runs of %s failed", hostname)
        return
    if requeued:
        logger.info("worker %s re-queued runs %s", hostname, requeued)
