from celery import shared_task

from . import services


@shared_task(name="inference.run_job", bind=True, acks_late=True)
def run_inference_job(self, job_id: int):
    """Thin: the service claims the job (or returns if it is gone, taken or cancelled) and records the outcome."""
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    job = services.job_run(job_id=job_id, worker=self.request.hostname or "", redelivered=redelivered)
    return job.status if job else None


@shared_task(name="inference.predict_frame")
def predict_frame(frame_b64: str, model_path: str, reply_channel: str):
    """The Celery alternative for webcam frames, kept so the benchmark can measure its round trip."""
    import base64

    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer

    from .serving import predict_bytes

    prediction = predict_bytes(base64.b64decode(frame_b64), model_path, thorough=False)
    async_to_sync(get_channel_layer().send)(reply_channel, {
        "type": "frame.result", "faces": prediction.faces, "timing_ms": prediction.timing_ms,
    })
