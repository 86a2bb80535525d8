from pathlib import Path

from django.conf import settings
from django.db import models

from ferweb.jobs import Job, status_field


class TrainingRun(Job):
    """One training job: its config, its live history and its evaluation.

    A background job (ferweb.jobs): queued -> running -> succeeded | failed | cancelled. A worker
    that dies leaves the row `running` with its name and a stale heartbeat; the next worker start
    re-queues it, and the run resumes from its last epoch checkpoint.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    dataset = models.ForeignKey("datasets.Dataset", on_delete=models.PROTECT, related_name="training_runs")
    name = models.CharField(max_length=200, blank=True)
    config = models.JSONField(default=dict, help_text="The full TrainConfig as a dict (every field, defaults filled in).")
    architecture = models.CharField(max_length=64, db_index=True)
    optimizer = models.CharField(max_length=32)
    init_from_run = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="fine_tunes",
        help_text="Fine-tuned from this run's best weights.",
    )
    init_checkpoint = models.FileField(
        upload_to="checkpoints/", blank=True, help_text="Uploaded weights to start from (transfer learning)."
    )
    status = status_field(Status, default=Status.QUEUED)
    history = models.JSONField(default=list, blank=True, help_text="One run.epoch event per finished epoch.")
    last_batch = models.JSONField(default=dict, blank=True, help_text="The latest run.batch event.")
    eta_seconds = models.FloatField(null=True, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Held-out evaluation of the best checkpoint.")
    param_count = models.PositiveBigIntegerField(null=True, blank=True)
    wall_time_s = models.FloatField(null=True, blank=True, help_text="Seconds spent training (all attempts).")
    best_epoch = models.PositiveIntegerField(null=True, blank=True)
    best_val_accuracy = models.FloatField(null=True, blank=True)
    cancel_requested = models.BooleanField(
        default=False, help_text="The run was asked to stop; the worker training it stops within a batch."
    )
    celery_task_id = models.CharField(max_length=64, blank=True, help_text="Id of the last task message sent for it.")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self):
        return f"run {self.pk} {self.architecture} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED

    @property
    def workdir(self) -> Path:
        """Checkpoints of this run (last.pt for resume, best weights)."""
        return Path(settings.MEDIA_ROOT) / "runs" / str(self.pk)

    @property
    def group_name(self) -> str:
        return f"run_{self.pk}"


def onnx_upload_path(instance, filename):
    return f"models/{filename}"


class ModelVersion(models.Model):
    """An exported ONNX model (the DESIGN.md artifact), from a run or registered by hand."""

    run = models.ForeignKey(
        TrainingRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="model_versions"
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
