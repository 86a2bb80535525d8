from pathlib import Path

from django.conf import settings
from django.db import models

from fercore.classes import CLASSES
from ferweb.jobs import Job, status_field


class Dataset(Job):
    """One uploaded dataset version: its import job and its stored faces.

    The import is a background job (ferweb.jobs): `importing` from upload to end, held by a
    worker while it reads the file. Faces live twice: one packed uint8 array per dataset (fast
    loading for training) and one DatasetItem row per face (browsing, admin edits, quality flags).
    """

    class Status(models.TextChoices):
        IMPORTING = "importing"
        READY = "ready"
        FAILED = "failed"

    name = models.CharField(max_length=200)
    status = status_field(Status, default=Status.IMPORTING)
    source = models.FileField(upload_to="uploads/", blank=True, help_text="The uploaded file, kept until the import ends.")
    source_name = models.CharField(max_length=255, blank=True, help_text="Original file name.")
    source_format = models.CharField(max_length=16, blank=True, help_text="zip, csv or images.")
    drop_unknown_classes = models.BooleanField(default=False)
    num_items = models.PositiveIntegerField(default=0)
    class_counts = models.JSONField(default=dict, blank=True, help_text="{class: n} over all splits.")
    split_counts = models.JSONField(default=dict, blank=True, help_text="{split: n}.")
    report = models.JSONField(default=dict, blank=True, help_text="Skipped members, faces not found, quality findings.")
    locked_at = models.DateTimeField(null=True, blank=True, help_text="Set when a run trains on it; read-only after.")
    archived_at = models.DateTimeField(
        null=True, blank=True,
        help_text="Set when its owner deleted it while runs still name it: hidden from lists, kept for their lineage.",
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} (#{self.pk})"

    @property
    def storage_dir(self) -> Path:
        return Path(settings.MEDIA_ROOT) / "datasets" / str(self.pk)

    @property
    def pixels_path(self) -> Path:
        return self.storage_dir / "pixels.npy"

    @property
    def mean_faces_path(self) -> Path:
        return self.storage_dir / "mean_faces.npy"

    @property
    def is_locked(self) -> bool:
        return self.locked_at is not None

    @property
    def is_finished(self) -> bool:
        return self.status in (self.Status.READY, self.Status.FAILED)


class DatasetItem(models.Model):
    """One 48x48 face of a dataset; `index` is its row in the packed pixel array."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    label = models.PositiveSmallIntegerField(choices=list(enumerate(CLASSES)))
    split = models.CharField(max_length=32, db_index=True)
    source_name = models.CharField(max_length=255, blank=True)
    flags = models.CharField(max_length=128, blank=True, help_text="Comma-separated quality flags.")
    excluded = models.BooleanField(default=False, help_text="Left out of training and evaluation.")

    class Meta:
        ordering = ["dataset", "index"]
        constraints = [models.UniqueConstraint(fields=["dataset", "index"], name="unique_item_index")]
        indexes = [models.Index(fields=["dataset", "label"])]

    def __str__(self):
        return f"{self.dataset_id}:{self.index} {CLASSES[self.label]}"


class LabelIssueScan(Job):
    """A search of one dataset for faces whose label is probably wrong (the label-error finder).

    A background job (ferweb.jobs) on the `inference` queue: queued -> running -> succeeded | failed |
    cancelled. A model classifies every face that is not excluded (ONNX Runtime), and confident
    learning (fercore.label_issues) flags and ranks the faces whose given label disagrees. One scan
    per dataset: a new one replaces a finished one.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    FINISHED = (Status.SUCCEEDED, Status.FAILED, Status.CANCELLED)

    dataset = models.OneToOneField(Dataset, on_delete=models.CASCADE, related_name="label_issue_scan")
    status = status_field(Status, default=Status.QUEUED)
    model_choice = models.CharField(
        max_length=16, help_text='What was asked for: "default" (the shipped model), "active", or a version id.'
    )
    # By id, as ModelVersion keeps its run: the scan outlives a deleted version, and says which it was.
    model_version_id = models.BigIntegerField(
        null=True, blank=True, help_text="The model version that scored the faces; empty for the shipped model."
    )
    model_label = models.CharField(max_length=100, blank=True, help_text="The model's version label (fer.version).")
    model_path = models.CharField(max_length=500, blank=True, help_text="The ONNX file used, fixed at the start.")
    in_sample = models.BooleanField(
        default=False, help_text="The model was trained on this dataset: its scores are in-sample, so weaker."
    )
    total = models.PositiveIntegerField(default=0, help_text="Faces to score (excluded ones left out).")
    processed = models.PositiveIntegerField(default=0, help_text="Faces scored so far.")
    issues = models.JSONField(
        default=list, blank=True,
        help_text="The flagged faces, most likely wrong first: [{item, given, suggested, score}] (item: a "
                  "DatasetItem id; given and suggested: class indices; score 0-1).",
    )
    counts = models.JSONField(default=dict, blank=True, help_text="{scored, flagged, flagged_by_class: {class: n}}.")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"label issues of dataset #{self.dataset_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
