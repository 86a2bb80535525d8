from pathlib import Path

from django.conf import settings
from django.db import models
from django.db.models.signals import post_delete
from django.dispatch import receiver

from ferweb.jobs import Job, status_field
from inference.models import onnx_upload_path  # noqa: F401 - named by migration 0001, from when versions lived here


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
    dataset_version = models.ForeignKey(
        "datasets.DatasetVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="training_runs",
        help_text="The exact version of the dataset it trained on (empty for runs older than versions).",
    )
    retrain_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="retrains",
        help_text="The run whose recipe it repeats on a newer version of the data.",
    )
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
    eta_seconds = models.FloatField(null=True, blank=True, help_text="Seconds left, every phase included.")
    estimated_seconds = models.FloatField(
        null=True, blank=True,
        help_text="Wall time estimated before it started, from the training worker's measured throughput.",
    )
    notes = models.TextField(blank=True, help_text="The owner's notes on the run.")
    tags = models.JSONField(default=list, blank=True, help_text="Short labels the owner gave the run.")
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

    @property
    def model_versions(self) -> models.QuerySet:
        """The model versions this run produced, newest first (the registry lives in inference)."""
        from inference.selectors import model_versions_of_run

        return model_versions_of_run(self.pk)


@receiver(post_delete, sender=TrainingRun, dispatch_uid="training_jobs.forget_deleted_run")
def _versions_forget_deleted_run(sender, instance: TrainingRun, **kwargs) -> None:
    """A deleted run's model versions stay and keep serving; they no longer name the run."""
    from inference.services import model_versions_forget_run

    model_versions_forget_run(run_id=instance.pk)


class Throughput(models.Model):
    """A training worker's measured speed for one architecture, batch size and precision on one device.

    Measured once per device by a short benchmark on the worker (and refreshed by every run's own
    epochs), so duration estimates come from this machine's numbers rather than a constant.
    """

    device = models.CharField(max_length=200, help_text="e.g. 'cpu: Intel Xeon, 2 threads' or 'cuda: NVIDIA H200'.")
    architecture = models.CharField(max_length=64)
    batch_size = models.PositiveIntegerField()
    bf16 = models.BooleanField(default=False)
    train_images_per_s = models.FloatField(help_text="Training images per second (forward, backward, step).")
    eval_images_per_s = models.FloatField(help_text="Evaluation images per second (forward only).")
    source = models.CharField(max_length=64, help_text="benchmark, or the run whose epochs measured it.")
    measured_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "architecture", "batch_size", "bf16"],
                                               name="unique_throughput")]

    def __str__(self):
        return f"{self.architecture} b{self.batch_size} on {self.device}: {self.train_images_per_s:.0f} img/s"
