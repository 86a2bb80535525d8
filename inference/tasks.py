from celery import shared_task

from . import services


@shared_task(name="inference.run_job", bind=True)
def run_inference_job(self, job_id: int):
    """Thin: the service claims the job (or returns if it is gone, taken or cancelled) and records the outcome."""
    job = services.job_run(job_id=job_id, worker=self.request.hostname or "")
    return job.state if job else None
