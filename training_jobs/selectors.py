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



def run_dataset_version(run: TrainingRun):
    """The version of its dataset the run trained on (a DatasetVersion), or None when the dataset has none.

    A run records it (dataset_version). For a run from before versions it is the dataset's version 1: a
    dataset was read-only once a run had used it, until versions came, and its first version keeps the
    state it held before its first edit since."""
    from ferweb.datasets.models import DatasetVersion

    if run.dataset_version_id:
        return run.dataset_version
    return DatasetVersion.objects.filter(dataset_id=run.dataset_id, number=1).first()


def latest_model_version(run: TrainingRun) -> ModelVersion | None:
    return run.model_versions.select_related("owner").first()


def majority_baseline(metrics: dict) -> dict | None:
    """What always answering the commonest class of the evaluation split scores: the accuracy a model
    must beat to have learnt anything. From the per-class support of `metrics`; None before evaluation.
    A tie goes to the class that comes first in the canonical order."""
    supports = {name: int(row.get("support") or 0) for name, row in (metrics.get("per_class") or {}).items()
                if isinstance(row, dict)}
    total = sum(supports.values())
    if not total:
        return None
    majority = max(supports, key=supports.get)
    return {"majority_class": majority, "majority_accuracy": supports[majority] / total}


def run_baseline(run: TrainingRun) -> dict | None:
    return majority_baseline(run.metrics or {})


def active_model_summary_for(user) -> dict:
    """The model serving `user`'s predictions, with its held-out accuracy (None when unknown): what a
    run's accuracy is weighed against before it is made active."""
    from inference import selectors as registry

    active = registry.active_model_for(user)
    if active.model_version_id is None:
        accuracy = registry.shipped_model().metrics.get("accuracy")
    else:
        metrics = ModelVersion.objects.filter(pk=active.model_version_id).values_list("metrics", flat=True).first()
        accuracy = (metrics or {}).get("accuracy")
    return {"id": active.model_version_id, "version": active.version, "accuracy": accuracy}


def run_visible_to(user, pk) -> bool:
    return run_list_for(user).filter(pk=pk).exists()


def runs_tagged(runs: QuerySet, tag: str) -> QuerySet:
    """The runs that carry `tag` (exactly, after trimming); all of them for an empty tag. Matched in
    Python: SQLite has no JSON containment lookup, and a user's runs are few."""
    tag = (tag or "").strip()
    if not tag:
        return runs
    ids = [pk for pk, tags in runs.values_list("pk", "tags") if tag in (tags or [])]
    return runs.filter(pk__in=ids)


def run_progress(run: TrainingRun) -> dict:
    """A run's `progress`: {percent 0-100, phase, eta_seconds}. The phase is queued, preparing_data,
    training, evaluating, occlusion_maps or exporting, "" once finished; the seconds left (every
    phase included) are known only while it runs."""
    running = run.status == TrainingRun.Status.RUNNING
    phase = run.phase or ("queued" if run.status == TrainingRun.Status.QUEUED else "")
    return {"percent": round(float(run.progress), 2), "phase": "" if run.is_finished else phase,
            "eta_seconds": run.eta_seconds if running else None}


def run_history_event(pk) -> dict:
    """What a page that opens mid-run needs before the live stream: everything so far."""
    run = TrainingRun.objects.get(pk=pk)
    return {
        "type": "run.history",
        "run": run.pk,
        "status": run.status,
        "progress": run_progress(run),
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


def training_device() -> str:
    """"cuda" when the training worker's newest throughput measurement was on a GPU, else "cpu" (also
    before any measurement): which preset a new run opens on."""
    from training_jobs.models import Throughput

    device = Throughput.objects.order_by("-measured_at", "-pk").values_list("device", flat=True).first() or ""
    return "cuda" if device.startswith("cuda") else "cpu"


def dataset_training_counts(dataset) -> list[tuple[str, int, int]]:
    """[(split name, label, faces)] of the dataset's faces that training would use (not excluded):
    enough to check its split without reading a face."""
    from django.db.models import Count

    from ferweb.datasets.models import DatasetItem

    rows = (DatasetItem.objects.filter(dataset_id=dataset.pk, excluded=False).order_by()
            .values_list("split", "label").annotate(n=Count("id")))
    return [(split, label, n) for split, label, n in rows]
