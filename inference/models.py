from pathlib import Path

from django.conf import settings
from django.db import models


class InferenceJob(models.Model):
    """A batch of photos (zip) or a video, classified face by face on the `inference` queue.

    queued -> running -> succeeded | failed | cancelled. Results are written to files as
    frames are processed (CSV row by row), so a long video needs no more memory than a short one.
    """

    class Kind(models.TextChoices):
        IMAGES = "images"
        VIDEO = "video"

    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (State.SUCCEEDED, State.FAILED, State.CANCELLED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="inference_jobs")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.QUEUED, db_index=True)
    progress = models.FloatField(default=0, help_text="0-100.")
    error = models.CharField(max_length=64, blank=True, help_text="Machine-readable error code.")
    human_readable_error = models.TextField(blank=True, help_text="What went wrong, for a person.")
    source = models.FileField(upload_to="inference_uploads/", max_length=255, blank=True,
                              help_text="The uploaded zip or video; removed when the job ends (the results stay).")
    source_name = models.CharField(max_length=255, help_text="Original file name.")
    every_k = models.PositiveIntegerField(default=1, help_text="Video: classify every k-th frame.")
    model_path = models.CharField(max_length=500, blank=True, help_text="ONNX file used, fixed when the job starts.")
    model_version = models.CharField(max_length=100, blank=True)
    total = models.PositiveIntegerField(default=0, help_text="Images in the zip or frames to classify (estimate).")
    processed = models.PositiveIntegerField(default=0, help_text="Images or frames done.")
    num_faces = models.PositiveIntegerField(default=0, help_text="Face detections written.")
    summary = models.JSONField(default=dict, blank=True, help_text="Per-face dominant emotion, shares and timeline.")
    worker = models.CharField(max_length=200, blank=True, help_text="Celery worker that holds the job.")
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text="Last progress write of the running job.")
    attempts = models.PositiveSmallIntegerField(default=0, help_text="Starts, counting restarts after a worker died.")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.kind} job #{self.pk} ({self.state})"

    @property
    def results_dir(self) -> Path:
        return Path(settings.MEDIA_ROOT) / "inference_jobs" / str(self.pk)

    @property
    def csv_path(self) -> Path:
        return self.results_dir / "results.csv"

    @property
    def json_path(self) -> Path:
        return self.results_dir / "results.json"

    @property
    def is_finished(self) -> bool:
        return self.state in self.FINISHED

    @property
    def group_name(self) -> str:
        return f"inference-job-{self.pk}"
