"""Celery interface to the import service: thin, takes ids, records outcomes in the service."""
from celery import shared_task

from . import services


@shared_task(bind=True, name="ferweb.datasets.tasks.import_dataset", acks_late=True)
def import_dataset(self, dataset_id: int) -> str:
    """Import one uploaded dataset; returns its final status (or why nothing ran)."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    worker = self.request.hostname or "unknown"
    if not services.dataset_imports.claim(dataset_id, worker=worker, redelivered=redelivered):
        return "not claimed"  # gone, finished, or another delivery is already running it
    dataset = services.dataset_import(dataset_id=dataset_id)
    return dataset.status if dataset else "deleted"
