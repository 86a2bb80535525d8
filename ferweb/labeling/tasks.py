"""Celery interface to labeling: thin, takes ids, the service records the outcome."""
from celery import shared_task

from . import services


@shared_task(bind=True, name="ferweb.labeling.tasks.process_labeling_set", acks_late=True)
def process_labeling_set(self, set_id: int) -> str:
    """Find, crop and classify the faces of a set's pending photos; returns its final status."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    worker = self.request.hostname or "unknown"
    if not services.labeling_jobs.claim(set_id, worker=worker, redelivered=redelivered):
        return "not claimed"  # gone, finished, or a live worker holds it (and takes any new photos)
    labeling_set = services.labeling_process(set_id=set_id)
    return labeling_set.status if labeling_set else "deleted"
