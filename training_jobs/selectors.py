"""Reads of training runs; every per-user read hides other users' rows. Model versions are read
through inference.selectors (the registry belongs to serving)."""
from django.conf import settings
from django.db.models import QuerySet

from ferweb.access import get_visible_or_404, visible_to
from inference.models import ModelVersion
from training_jobs.models import TrainingRun


def _runs() -> QuerySet:
    return TrainingRun.objects.select_related("dataset", "owner")


def run_list_for(user) -> QuerySet:
    return visible_to(user, _runs())


def run_get_for(user, pk) -> TrainingRun:
    """The run, if `user` may see it; 404 otherwise (other users' runs do not exist for them)."""
    return get_visible_or_404(user, _runs(), pk, "No such run.")


def latest_model_version(run: TrainingRun) -> ModelVersion | None:
    return run.model_versions.select_related("owner").first()


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


def run_next_fair_id() -> int | None:
    """The queued run a free training worker takes next: round-robin by user, not first come.

    Users are ordered by their last turn (the latest start of any of their runs; never started
    comes first), and the user whose turn is the longest ago gets their oldest queued run. So
    one user's three queued runs cannot keep another user's run waiting behind all three.
    """
    from django.db.models import F, Max, OuterRef, Subquery

    last_turn = (
        TrainingRun.objects.filter(owner=OuterRef("owner"), started_at__isnull=False)
        .order_by().values("owner").annotate(last=Max("started_at")).values("last")
    )
    return (
        TrainingRun.objects.filter(status=TrainingRun.Status.QUEUED, heartbeat_at__isnull=True)
        .annotate(last_turn=Subquery(last_turn))
        .order_by(F("last_turn").asc(nulls_first=True), "created_at", "pk")
        .values_list("pk", flat=True)
        .first()
    )


FER2013_FACES = 35_887  # the size the limits are given for when no dataset is named


def run_limits_for(user, *, faces: int = FER2013_FACES) -> dict:
    """The training worker's limits (memory, cores, the largest batch per architecture for a
    dataset of `faces`) and the user's quotas with their usage."""
    from ferweb import quotas
    from training_jobs.ml import memory

    cap = settings.FERWEB_TRAIN_MAX_MEMORY_MB * 1024 * 1024
    return {
        "training": {
            "memory_mb": settings.FERWEB_TRAIN_MAX_MEMORY_MB,
            "cores": settings.FERWEB_TRAIN_MAX_THREADS,
            "max_attempts": settings.FERWEB_JOB_MAX_ATTEMPTS,
            "faces": faces,
            "optimizer": "nadam",
            "max_batch_size": memory.max_batch_sizes(cap, faces=faces),
        },
        "quotas": quotas.usage(user),
    }
