"""Celery interface to the import service: thin, takes ids, records outcomes in the service."""
from celery import shared_task

from . import label_issues, services


@shared_task(bind=True, name="ferweb.datasets.tasks.import_dataset", acks_late=True)
def import_dataset(self, dataset_id: int) -> str:
    """Import one uploaded dataset; returns its final status (or why nothing ran)."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    worker = self.request.hostname or "unknown"
    if not services.dataset_imports.claim(dataset_id, worker=worker, redelivered=redelivered):
        return "not claimed"  # gone, finished, or another delivery is already running it
    dataset = services.dataset_import(dataset_id=dataset_id)
    return dataset.status if dataset else "deleted"


@shared_task(bind=True, name="ferweb.datasets.tasks.scan_label_issues", acks_late=True)
def scan_label_issues(self, scan_id: int) -> str | None:
    """Thin: the service claims the scan (or returns if it is gone, taken or cancelled) and records the outcome."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    scan = label_issues.scan_run(scan_id=scan_id, worker=self.request.hostname or "unknown", redelivered=redelivered)
    return scan.status if scan else None
