from pathlib import Path

from django.conf import settings
from django.db import models

from ferweb.jobs import Job, status_field


class InferenceJob(Job):
    """A batch of photos (zip) or a video, classified face by face on the `inference` queue.

    A background job (ferweb.jobs): queued -> running -> succeeded | failed | cancelled. Results are written to files as
    frames are processed (CSV row by row), so a long video needs no more memory than a short one.
    """

    class Kind(models.TextChoices):
        IMAGES = "images"
        VIDEO = "video"

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = status_field(Status, default=Status.QUEUED)
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

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.kind} job #{self.pk} ({self.status})"

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
        return self.status in self.FINISHED

    @property
    def group_name(self) -> str:
        return f"inference-job-{self.pk}"
