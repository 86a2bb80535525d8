"""Reads of the inference app: jobs and the model registry (versions, the active choice, the shipped
model). Other users' jobs and versions do not exist for a user (404); staff see all."""
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.conf import settings
from django.db.models import Case, Exists, IntegerField, Q, QuerySet, Value, When
from django.http import Http404

from ferweb.access import get_visible_or_404, visible_to

from .models import ActiveModelChoice, InferenceJob, ModelVersion


def job_list_for(user) -> QuerySet:
    return visible_to(user, InferenceJob.objects.select_related("owner"))


def job_get_for(user, pk) -> InferenceJob:
    return get_visible_or_404(user, InferenceJob.objects.select_related("owner"), pk, "No such job.")


# ---------------------------------------------------------------- the model registry


@dataclass(frozen=True)
class ActiveModel:
    path: Path
    version: str
    model_version_id: int | None


def active_model_for(user) -> ActiveModel:
    """The model that serves `user`'s predictions, in one query.

    The user's own choice wins (a version, or the shipped model chosen explicitly) while the user
    may still see that version (model_list_for's rule: their own, the site default, all for staff),
    then the site default version, then the shipped default file. Every prediction calls this, so a
    promotion (or a site default that staff unset) reaches every process at once without any cache
    to invalidate.
    """
    signed_in = user is not None and user.is_authenticated
    if signed_in:
        visible = Q() if user.is_staff else Q(owner_id=user.pk) | Q(is_site_default=True)
        mine = Q(chosen_by__user_id=user.pk) & visible
    else:
        mine = Q(pk__in=[])
    shipped_chosen = ActiveModelChoice.objects.filter(user_id=user.pk if signed_in else None, model_version=None)
    chosen = (
        ModelVersion.objects.filter(mine | (Q(is_site_default=True) & ~Exists(shipped_chosen)))
        .annotate(rank=Case(When(mine, then=Value(0)), default=Value(1), output_field=IntegerField()))
        .order_by("rank")
        .only("id", "onnx_file", "version")
        .first()
    )
    if chosen is None:
        # Named by its card (e.g. default-20261201-fast_resnet), so a prediction or job says which
        # shipped model answered even after an upgrade replaces the file; "default" without a card.
        shipped = shipped_model()
        return ActiveModel(path=shipped.path, version=shipped.version, model_version_id=None)
    return ActiveModel(path=chosen.path, version=chosen.version, model_version_id=chosen.pk)


@dataclass(frozen=True)
class ShippedModel:
    """The default model that ships with FERWeb, as its model card describes it."""

    path: Path
    exists: bool
    version: str = "default"
    architecture: str = ""
    metrics: dict = field(default_factory=dict)
    param_count: int | None = None
    latency_ms: float | None = None
    trained_class_counts: dict = field(default_factory=dict)  # {class: faces} it was trained on (the card's data)
    trained_prints: Path | None = None  # the prints of its training faces (fercore.face_prints), when shipped


CARD_METRICS = ("accuracy", "macro_f1", "macro_auc", "micro_auc")


def shipped_model() -> ShippedModel:
    """The shipped model file and its card (default.json next to default.onnx); a missing card leaves blanks."""
    path = Path(settings.FERWEB_DEFAULT_MODEL)
    card = path.with_suffix(".json")
    # Keyed by the card's and the prints' file times, so a republished model shows without a restart.
    prints = path.with_suffix(".faces.npy")
    stamp = card.stat().st_mtime_ns if card.exists() else None
    prints_stamp = prints.stat().st_mtime_ns if prints.exists() else None
    return _shipped_model(path, path.exists(), stamp, prints_stamp)


@lru_cache(maxsize=4)
def _shipped_model(path: Path, exists: bool, card_stamp: int | None, prints_stamp: int | None) -> ShippedModel:
    if card_stamp is None:
        return ShippedModel(path=path, exists=exists)
    try:
        card = json.loads(path.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return ShippedModel(path=path, exists=exists)
    metrics = card.get("metrics_summary") or card.get("metrics") or {}
    return ShippedModel(
        path=path,
        exists=exists,
        version=str(card.get("version") or "default"),
        architecture=str(card.get("architecture") or ""),
        metrics={k: metrics[k] for k in CARD_METRICS if k in metrics},
        param_count=card.get("parameters"),
        latency_ms=(card.get("latency") or {}).get("batch1_median_ms_2_threads"),
        trained_class_counts=dict((card.get("data") or {}).get("class_counts") or {}),
        trained_prints=path.with_suffix(".faces.npy") if prints_stamp is not None else None,
    )


def site_default_version() -> ModelVersion | None:
    return ModelVersion.objects.filter(is_site_default=True).first()


def model_list_for(user) -> QuerySet:
    """Versions a user may see: their own, the site default, and everything for staff."""
    queryset = ModelVersion.objects.select_related("owner")
    if user.is_staff:
        return queryset
    return queryset.filter(Q(owner=user) | Q(is_site_default=True))


def model_get_for(user, pk) -> ModelVersion:
    try:
        return model_list_for(user).get(pk=pk)
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise Http404("No such model version.")


def model_versions_of_run(run_id: int) -> QuerySet:
    """The versions a training run produced, newest first."""
    return ModelVersion.objects.filter(run_id=run_id).order_by("-created_at", "-id")
