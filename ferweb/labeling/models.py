"""Labeling: photos go in, faces come out with a proposed label, a person confirms them."""
import math
from pathlib import Path

from django.conf import settings
from django.db import models

from fercore.classes import CLASSES
from ferweb.jobs import Job, status_field

CLASS_CHOICES = list(enumerate(CLASSES))


def photo_upload_to(photo: "LabelingPhoto", filename: str) -> str:
    return f"labeling/{photo.labeling_set_id}/{Path(filename).name}"


class LabelingSet(Job):
    """A batch of photos being labeled, and the background job (ferweb.jobs) that finds and
    classifies their faces: `processing` while any photo waits, held by a worker while it works."""

    class Status(models.TextChoices):
        PROCESSING = "processing"
        READY = "ready"
        FAILED = "failed"

    name = models.CharField(max_length=200)
    status = status_field(Status, default=Status.READY)
    photos_total = models.PositiveIntegerField(default=0, help_text="Photos uploaded (zip members counted one by one).")
    photos_done = models.PositiveIntegerField(default=0, help_text="Photos processed so far.")
    report = models.JSONField(
        default=dict, blank=True,
        help_text="{unreadable: [{name, reason}], no_face: [{name, reason}], model: {version, error}}.",
    )
    datasets = models.ManyToManyField(
        "datasets.Dataset", blank=True, related_name="labeling_sets", help_text="Datasets created from this set."
    )

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.name} (#{self.pk})"

    @property
    def storage_dir(self) -> Path:
        return Path(settings.MEDIA_ROOT) / "labeling" / str(self.pk)


class LabelingPhoto(models.Model):
    """One uploaded file waiting to be searched for faces; a zip is expanded into photos first."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DONE = "done"
        NO_FACE = "no_face"
        UNREADABLE = "unreadable"
        EXPANDED = "expanded", "expanded (a zip)"

    labeling_set = models.ForeignKey(LabelingSet, on_delete=models.CASCADE, related_name="photos")
    name = models.CharField(max_length=255, help_text="File name as uploaded; zip members as zip/member.")
    file = models.FileField(upload_to=photo_upload_to, max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reason = models.CharField(max_length=255, blank=True, help_text="Why no face came out of it.")
    num_faces = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["labeling_set", "status"])]

    def __str__(self):
        return self.name


def entropy_of(probabilities: dict) -> float | None:
    """Shannon entropy of {class: p} in nats (0: certain; ln 7 = 1.95: all classes alike); None without any."""
    values = [float(p) for p in (probabilities or {}).values() if p and float(p) > 0]
    if not values:
        return None
    total = sum(values)
    return round(-sum(p / total * math.log(p / total) for p in values), 4)


class LabelingFace(models.Model):
    """A 48x48 face crop with the model's proposal and the person's decision."""

    class Status(models.TextChoices):
        PENDING = "pending"
        CONFIRMED = "confirmed"
        SKIPPED = "skipped"
        REJECTED = "rejected", "rejected (not a usable face)"

    labeling_set = models.ForeignKey(LabelingSet, on_delete=models.CASCADE, related_name="faces")
    photo = models.ForeignKey(LabelingPhoto, on_delete=models.SET_NULL, null=True, blank=True, related_name="faces")
    crop_png = models.BinaryField(help_text="The 48x48 grayscale crop as PNG (the same crop training sees).")
    source_name = models.CharField(max_length=255, help_text="Photo name, with #k for its k-th face.")
    box = models.JSONField(default=list, help_text="[x, y, w, h] in the upright photo, pixels.")
    proposed_label = models.PositiveSmallIntegerField(choices=CLASS_CHOICES, null=True, blank=True)
    proposed_probability = models.FloatField(null=True, blank=True, help_text="Probability of the proposed label.")
    probabilities = models.JSONField(default=dict, blank=True, help_text="{class: p} from the model.")
    entropy = models.FloatField(
        null=True, blank=True, help_text="Entropy of the probabilities in nats (higher: less sure); kept for ordering."
    )
    model_version = models.CharField(max_length=200, blank=True, help_text="Model that made the proposal.")
    confirmed_label = models.PositiveSmallIntegerField(choices=CLASS_CHOICES, null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    decided_at = models.DateTimeField(
        null=True, blank=True, help_text="When the face was last confirmed, corrected, skipped or rejected; "
                                         "the latest one is what an undo takes back."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["labeling_set", "status"]), models.Index(fields=["labeling_set", "decided_at"])]

    def __str__(self):
        return f"{self.source_name} ({self.status})"

    def save(self, *args, **kwargs):
        if self.entropy is None and self.probabilities:
            self.entropy = entropy_of(self.probabilities)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "entropy"}
        super().save(*args, **kwargs)

    @property
    def proposed_class(self) -> str | None:
        return None if self.proposed_label is None else CLASSES[self.proposed_label]

    @property
    def confirmed_class(self) -> str | None:
        return None if self.confirmed_label is None else CLASSES[self.confirmed_label]
