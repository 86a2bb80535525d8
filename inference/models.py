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


def onnx_upload_path(instance, filename):
    return f"models/{filename}"


class ModelVersion(models.Model):
    """An exported ONNX model (the DESIGN.md artifact), from a training run or registered by hand.

    The registry belongs to serving; training runs produce versions through
    services.model_version_create.
    """

    # The run is kept by id, not as a ForeignKey to the training app's TrainingRun: a relation would
    # make this app (the lower layer) need the training app installed and migrated, so serving could
    # not be deployed without training. The training app clears the id when it deletes a run (the
    # SET_NULL the relation had) and reads a run's versions by it (TrainingRun.model_versions).
    run_id = models.BigIntegerField(
        null=True, blank=True, db_index=True,
        help_text="The training run that produced it; empty when registered by hand or when the run was deleted.",
    )
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="model_versions")
    onnx_file = models.FileField(upload_to=onnx_upload_path, max_length=255)
    architecture = models.CharField(max_length=64)
    version = models.CharField(max_length=100, help_text="Label written into the ONNX metadata (fer.version).")
    metrics = models.JSONField(default=dict, blank=True)
    param_count = models.PositiveBigIntegerField(null=True, blank=True)
    latency_ms = models.FloatField(null=True, blank=True, help_text="Median ONNX Runtime CPU latency at batch 1.")
    parity_max_abs_diff = models.FloatField(null=True, blank=True, help_text="ONNX vs PyTorch logits.")
    is_site_default = models.BooleanField(default=False, help_text="Serves everyone who has not chosen a model.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_site_default"], condition=models.Q(is_site_default=True), name="one_site_default_model"
            )
        ]

    def __str__(self):
        return f"{self.version} ({self.architecture})"

    @property
    def path(self) -> Path:
        return Path(self.onnx_file.path)


class ActiveModelChoice(models.Model):
    """The model a user chose for their own predictions: a version, or (no version) the shipped model.

    Either wins over the site default; a user without a row gets the site default, or the shipped model.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="active_model_choice")
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="chosen_by",
                                      null=True, blank=True, help_text="Empty: the model shipped with FERWeb.")
    chosen_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.user} -> {self.model_version or 'the shipped model'}"
