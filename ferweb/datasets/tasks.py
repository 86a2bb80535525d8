"""Celery interface to the import service: thin, takes ids, records outcomes in the service."""
import logging

from celery import shared_task
from celery.signals import worker_ready
from django.db import close_old_connections

from . import services

logger = logging.getLogger(__name__)


@shared_task(bind=True, name="ferweb.datasets.tasks.import_dataset", acks_late=True)
def import_dataset(self, dataset_id: int) -> str:
    """Import one uploaded dataset; returns its final status (or why nothing ran)."""
    worker = self.request.hostname or "unknown"
    if not services.dataset_import_claim(dataset_id=dataset_id, worker=worker):
        if (self.request.delivery_info or {}).get("redelivered"):
            # Back after its pool process died mid-import (reject_on_worker_lost re-queues it).
            return services.dataset_import_recover(dataset_id=dataset_id, worker=worker) or "not claimed"
        return "not claimed"  # gone, finished, or another delivery is already running it
    dataset = services.dataset_import(dataset_id=dataset_id)
    return dataset.status if dataset else "deleted"


@worker_ready.connect
def recover_crashed_imports(sender=None, **kwargs):
    """A starting worker recovers imports that its previous life (same name) or a silent worker left running."""
    hostname = getattr(sender, "hostname", None)
    if not hostname:
        return
    try:
        close_old_connections()
        services.dataset_import_sweep(worker=hostname)
    except Exception:  # a sweep must never keep the worker from starting
        logger.exception("recovering crashed dataset imports failed")
