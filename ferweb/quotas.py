"""Per-user quotas: active training runs, active inference jobs, and bytes stored.

Services call one check before they take work or store a file:
- `check_active_runs(user)`: queued + running training runs and cross-validation scans (they train
  on the same worker), at most FERWEB_QUOTA_ACTIVE_RUNS;
- `check_active_jobs(user)`: queued + running inference jobs, at most FERWEB_QUOTA_ACTIVE_JOBS;
- `check_storage(user, incoming_bytes)`: what the user keeps under MEDIA_ROOT plus the upload,
  at most FERWEB_QUOTA_STORAGE_MB.
Each raises `QuotaExceeded`, which the API answers in its one error shape with code
`quota_exceeded`: 429 for the two counts (wait for one to finish, or cancel one), 413 when an
upload would not fit, 400 when the storage is already full and a request would add to it.
A quota set to 0 is off.

Staff are exempt: they run the installation (publish the default model, train the long sweeps)
and are few; the quotas keep ordinary users from crowding each other out. The training memory
cap is not a quota but a fact of the machine, and holds for staff too.

The count checks lock the user's row, so two requests at the same moment cannot both take the
last slot; call them inside the service's transaction.
"""
import os
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model

from ferweb.api_errors import ApiError

MB = 1024 * 1024
ACTIVE_RUN_STATES = ("queued", "running")
ACTIVE_JOB_STATES = ("queued", "running")


class QuotaExceeded(ApiError):
    """A request over one of the user's quotas; the detail names the quota and its setting."""

    def __init__(self, detail: str, *, status: int, quota: str):
        super().__init__("quota_exceeded", detail, status=status)
        self.quota = quota


def is_exempt(user) -> bool:
    return bool(getattr(user, "is_staff", False))


def _lock(user) -> None:
    get_user_model().objects.select_for_update().filter(pk=user.pk).exists()


# ---------------------------------------------------------------- counts


def active_runs(user) -> int:
    runs = apps.get_model("training_jobs", "TrainingRun").objects.filter(owner=user, status__in=ACTIVE_RUN_STATES)
    scans = apps.get_model("datasets", "LabelIssueScan").objects.filter(
        owner=user, status__in=ACTIVE_RUN_STATES, folds__isnull=False)
    return runs.count() + scans.count()


def active_jobs(user) -> int:
    return apps.get_model("inference", "InferenceJob").objects.filter(
        owner=user, status__in=ACTIVE_JOB_STATES).count()


def check_active_runs(user) -> None:
    limit = settings.FERWEB_QUOTA_ACTIVE_RUNS
    if is_exempt(user) or not limit:
        return
    _lock(user)
    if active_runs(user) >= limit:
        raise QuotaExceeded(
            f"You have {limit} training runs or cross-validation scans queued or running, your quota "
            "(FERWEB_QUOTA_ACTIVE_RUNS): wait for one to finish or cancel one.", status=429, quota="active_runs")


def check_active_jobs(user) -> None:
    limit = settings.FERWEB_QUOTA_ACTIVE_JOBS
    if is_exempt(user) or not limit:
        return
    _lock(user)
    if active_jobs(user) >= limit:
        raise QuotaExceeded(
            f"You have {limit} inference jobs queued or running, your quota (FERWEB_QUOTA_ACTIVE_JOBS): "
            "wait for one to finish or cancel one.", status=429, quota="active_jobs")


# ---------------------------------------------------------------- storage


def _size(path) -> int:
    """Bytes of a file, or of every file under a folder; 0 when it is not there."""
    path = Path(path)
    try:
        if path.is_file():
            return path.stat().st_size
        total = 0
        for root, _dirs, files in os.walk(path):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except OSError:
                    pass  # removed while we looked
        return total
    except OSError:
        return 0


def _file(field) -> Path | None:
    return Path(settings.MEDIA_ROOT) / field.name if field else None


def stored_paths(user) -> list[Path]:
    """Everything under MEDIA_ROOT that belongs to the user: dataset uploads and packed faces,
    labeling photos, inference job uploads and results, run checkpoints and uploaded weights,
    and exported models (with their INT8 copies)."""
    model = apps.get_model
    paths: list[Path | None] = []
    for dataset in model("datasets", "Dataset").objects.filter(owner=user).only("id", "source"):
        paths += [dataset.storage_dir, _file(dataset.source)]
    for labeling_set in model("labeling", "LabelingSet").objects.filter(owner=user).only("id"):
        paths.append(labeling_set.storage_dir)
    for job in model("inference", "InferenceJob").objects.filter(owner=user).only("id", "source"):
        paths += [job.results_dir, _file(job.source)]
    for run in model("training_jobs", "TrainingRun").objects.filter(owner=user).only("id", "init_checkpoint"):
        paths += [run.workdir, _file(run.init_checkpoint)]
    for version in model("inference", "ModelVersion").objects.filter(owner=user).only("id", "onnx_file"):
        onnx = _file(version.onnx_file)
        if onnx is not None:
            paths += [onnx, onnx.with_suffix(".int8.onnx")]
    return [path for path in paths if path is not None]


def storage_used(user) -> int:
    """Bytes the user keeps under MEDIA_ROOT (see stored_paths)."""
    return sum(_size(path) for path in set(stored_paths(user)))


def check_storage(user, incoming_bytes: int = 0) -> None:
    limit_mb = settings.FERWEB_QUOTA_STORAGE_MB
    if is_exempt(user) or not limit_mb:
        return
    used = storage_used(user)
    if used + max(incoming_bytes, 0) <= limit_mb * MB:
        return
    setting = f"{limit_mb:,} MB (FERWEB_QUOTA_STORAGE_MB)"
    if incoming_bytes > 0:
        raise QuotaExceeded(
            f"This upload ({incoming_bytes / MB:,.1f} MB) would take your storage to {(used + incoming_bytes) / MB:,.1f} MB, "
            f"over your quota of {setting}: delete datasets, jobs or runs you no longer need.",
            status=413, quota="storage")
    raise QuotaExceeded(
        f"Your storage ({used / MB:,.1f} MB) is at your quota of {setting}: delete datasets, jobs or runs "
        "you no longer need.", status=400, quota="storage")


# ---------------------------------------------------------------- for the limits endpoint


def usage(user) -> dict:
    """Each quota with its limit, the user's usage and the setting behind it."""
    return {
        "exempt": is_exempt(user),
        "active_runs": {"limit": settings.FERWEB_QUOTA_ACTIVE_RUNS, "used": active_runs(user),
                        "setting": "FERWEB_QUOTA_ACTIVE_RUNS"},
        "active_jobs": {"limit": settings.FERWEB_QUOTA_ACTIVE_JOBS, "used": active_jobs(user),
                        "setting": "FERWEB_QUOTA_ACTIVE_JOBS"},
        "storage_mb": {"limit": settings.FERWEB_QUOTA_STORAGE_MB, "used": round(storage_used(user) / MB, 1),
                       "setting": "FERWEB_QUOTA_STORAGE_MB"},
    }
