"""Celery interface to labeling: thin, takes ids, the service records the outcome."""
import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import close_old_connections

from . import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="ferweb.labeling.tasks.process_labeling_set", acks_late=True)
def process_labeling_set(self, set_id: int) -> str:
    """Find, crop and classify the faces of a set's pending photos; returns its final status."""
    worker = self.request.hostname or "unknown"
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    if not services.labeling_claim(set_id=set_id, worker=worker, redelivered=redelivered):
        return "not claimed"  # gone, finished, or another worker holds it
    labeling_set = services.labeling_process(set_id=set_id)
    return labeling_set.status if labeling_set else "deleted"


@worker_ready.connect
def requeue_stalled_labeling(sender=None, **kwargs):
    """A starting worker re-queues sets that a dead worker left processing."""
    hostname = getattr(sender, "hostname", None)
    if not hostname:
        return
    try:
        close_old_connections()
        services.labeling_requeue_stalled(worker=hostname)
    except Exception:  # recovery must never keep the worker from starting
        logger.exception("re-queuing stalled labeling sets failed")
