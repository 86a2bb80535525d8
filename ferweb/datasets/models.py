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


class DatasetVersion(models.Model):
    """One immutable state of a dataset's labels: which faces it holds, their labels, splits and exclusions.

    A dataset is a chain of versions: the import makes version 1, and every relabel, exclusion, addition
    or split move makes a child of the newest one (ferweb.datasets.versions). The state itself lives in
    a small file (versions/<number>.npz beside the packed faces, which only ever grow); the row keeps
    its content hash, its parent and a one-line summary of the change. The newest version gathers one
    person's sitting of edits from one place until it is `sealed`: a run trained on it, it was exported,
    or the sitting ended. A sealed version never changes.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField(help_text="1 for the import, then 2, 3, ... along the chain.")
    parent = models.ForeignKey(
        # CASCADE: versions go only with their dataset (or an undone sitting, which has no children).
        "self", null=True, blank=True, on_delete=models.CASCADE, related_name="children",
        help_text="The version this one changed; empty for the import.",
    )
    content_hash = models.CharField(
        max_length=64, help_text="SHA-256 of the faces, labels, splits and exclusions this version holds."
    )
    source = models.CharField(
        max_length=32, help_text="Where the change came from: import, edit, review, confusion, admin or labeling."
    )
    summary = models.CharField(max_length=300, blank=True, help_text='The change in one line, e.g. "12 relabeled fear -> sad, 3 excluded".')
    changes = models.JSONField(
        default=dict, blank=True,
        help_text="The change against the parent: {relabeled: {'fear -> sad': n}, excluded, included, added, moved}.",
    )
    num_items = models.PositiveIntegerField(default=0, help_text="Faces it holds, excluded ones left out.")
    class_counts = models.JSONField(default=dict, blank=True)
    split_counts = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sealed = models.BooleanField(default=False, help_text="Never changes again (a run used it, or it was exported).")

    class Meta:
        ordering = ["dataset", "-number"]
        constraints = [models.UniqueConstraint(fields=["dataset", "number"], name="unique_version_number")]

    def __str__(self):
        return f"{self.dataset.name} v{self.number}"

    @property
    def state_path(self) -> Path:
        return self.dataset.storage_dir / "versions" / f"{self.number}.npz"


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
    folds = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="Cross-validation: how many folds were trained; empty when a model scored."
    )
    recipe = models.JSONField(default=dict, blank=True, help_text="Cross-validation: the recipe each fold trains.")
    estimated_seconds = models.FloatField(null=True, blank=True, help_text="Cross-validation: the estimate at start.")
    dataset_version = models.ForeignKey(
        DatasetVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="The version whose labels were scored.",
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"label issues of dataset #{self.dataset_id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINISHED
