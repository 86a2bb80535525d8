"""Celery interface to the training services: tasks take ids and call one service."""
from celery import shared_task

from training_jobs import services


@shared_task(bind=True, name="training_jobs.tasks.train_run", acks_late=True)
def train_run(self, run_id: int) -> str:
    """Every queued run sends one message, but a message runs the *fair* next run (round-robin by
    user, see selectors.run_next_fair_id), which need not be `run_id`. Each delivery claims at most
    one queued run and every queued run has a message, so each still runs exactly once; a message
    that finds nothing queued (its run was cancelled, or taken by an earlier message) does nothing."""
    run = services.run_execute_next(worker=self.request.hostname or "")
    return f"run {run.pk} {run.status}" if run else f"nothing queued (woken for run {run_id})"
