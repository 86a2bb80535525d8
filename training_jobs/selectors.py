"""Reads of training runs and model versions; every per-user read hides other users' rows."""
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db.models import Case, IntegerField, Q, QuerySet, Value, When
from django.http import Http404

from ferweb.access import get_visible_or_404, visible_to
from training_jobs.models import ModelVersion, TrainingRun


@dataclass(frozen=True)
class ActiveModel:
    path: Path
    version: str
    model_version_id: int | None


def active_model_for(user) -> ActiveModel:
    """The model that serves `user`'s predictions, in one query.

    The user's own choice wins, then the site default version, then the shipped
    default file. Every prediction calls this, so a promotion reaches every process
    at once without any cache to invalidate.
    """
    mine = Q(chosen_by__user_id=user.pk) if user is not None and user.is_authenticated else Q(pk__in=[])
    chosen = (
        ModelVersion.objects.filter(mine | Q(is_site_default=True))
        .annotate(rank=Case(When(mine, then=Value(0)), default=Value(1), output_field=IntegerField()))
        .order_by("rank")
        .only("id", "onnx_file", "version")
        .first()
    )
    if chosen is None:
        return ActiveModel(path=Path(settings.FERWEB_DEFAULT_MODEL), version="default", model_version_id=None)
    return ActiveModel(path=chosen.path, version=chosen.version, model_version_id=chosen.pk)


def _runs() -> QuerySet:
    return TrainingRun.objects.select_related("dataset", "owner").prefetch_related("model_versions")


def run_list_for(user) -> QuerySet:
    return visible_to(user, _runs())


def run_get_for(user, pk) -> TrainingRun:
    """The run, if `user` may see it; 404 otherwise (other users' runs do not exist for them)."""
    return get_visible_or_404(user, _runs(), pk, "No such run.")


def model_list_for(user) -> QuerySet:
    """Versions a user may see: their own, the site default, and everything for staff."""
    queryset = ModelVersion.objects.select_related("run", "owner")
    if user.is_staff:
        return queryset
    return queryset.filter(Q(owner=user) | Q(is_site_default=True))


def model_get_for(user, pk) -> ModelVersion:
    try:
        return model_list_for(user).get(pk=pk)
    except (ModelVersion.DoesNotExist, ValueError, TypeError):
        raise Http404("No such model version.")


def latest_model_version(run: TrainingRun) -> ModelVersion | None:
    versions = list(run.model_versions.all())
    return max(versions, key=lambda v: (v.created_at, v.pk)) if versions else None


def run_visible_to(user, pk) -> bool:
    return run_list_for(user).filter(pk=pk).exists()


def run_history_event(pk) -> dict:
    """What a page that opens mid-run needs before the live stream: everything so far."""
    run = TrainingRun.objects.get(pk=pk)
    return {
        "type": "run.history",
        "run": run.pk,
        "status": run.status,
        "progress": run.progress,
        "eta_seconds": run.eta_seconds,
        "history": run.history,
        "last_batch": run.last_batch,
        "error": run.error,
        "human_readable_error": run.human_readable_error,
    }
