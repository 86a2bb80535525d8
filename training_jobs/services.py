"""Writes for training runs (a finished run registers its model through inference.services).
Views, tasks, consumers and commands call these."""
import logging
import re
import shutil
import time
from pathlib import Path

import numpy as np
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from ferweb import quotas
from ferweb.datasets.models import Dataset
from ferweb.jobs import JobLifecycle
from inference import selectors as registry
from inference.services import model_version_create
from training_jobs import estimates, selectors
from training_jobs.ml import memory
from training_jobs.models import TrainingRun

logger = logging.getLogger(__name__)


class RunError(Exception):
    """A request the service refuses; `errors` maps fields to messages for a 400 answer.

    `code` is "invalid" for field errors, or names the refusal (e.g. too_much_memory), whose
    `detail` then says what to do.
    """

    def __init__(self, errors: dict[str, str], *, code: str = "invalid", detail: str = ""):
        self.errors = dict(errors)
        self.code = code
        self.detail = detail or "; ".join(f"{name}: {message}" for name, message in self.errors.items())
        super().__init__(self.detail)


class RunFailure(Exception):
    """A run that cannot finish: `code` is machine-readable, the message is for a person."""

    def __init__(self, code: str, message: str):
        self.code = code
        super().__init__(message)


# ---------------------------------------------------------------- config


def validate_config(data: dict) -> dict:
    """Form, API and command line values -> the complete, validated TrainConfig dict."""
    from training_jobs.ml.config import ConfigError, TrainConfig

    try:
        return TrainConfig.from_dict(data).to_dict()
    except ConfigError as exc:
        raise RunError(exc.errors) from None


def recipe_from(preset: str | None, overrides: dict) -> dict:
    """The recipe a client asks for, before validation: the preset's complete recipe with `overrides`
    on top, or the overrides alone when no preset is named (missing fields then take their defaults).
    The form, POST /api/runs/ and the estimate all merge here. RunError on `preset` for an unknown name."""
    from training_jobs.ml import presets
    from training_jobs.ml.config import ConfigError

    if not preset:
        return dict(overrides)
    try:
        return presets.apply_preset(preset, overrides)
    except ConfigError as exc:
        raise RunError(exc.errors) from None


def default_run_name(config: dict, *, dataset: Dataset, preset: str = "") -> str:
    """e.g. "quick · fast_resnet on fer2013-train", or "quick (changed) · ..." when the recipe is no
    longer the preset's own; "fast_resnet on fer2013-train" without a preset."""
    from training_jobs.ml import presets

    name = f"{config['architecture']} on {dataset.name}"
    if preset not in presets.PRESETS:
        return name
    same = config == validate_config(presets.apply_preset(preset))
    return f"{preset}{'' if same else ' (changed)'} · {name}"


def holdout_error(*, dataset: Dataset, validation_fraction: float, seed: int) -> str:
    """Why the trainer could not split the dataset, or "" when it can (training_jobs.ml.data.split_data,
    counted from the database, no face read). It needs faces in a training split, and a validation
    face: the dataset's own validation split, or the stratified share of training, which holds out a
    face of every class that has at least two."""
    from training_jobs.ml.data import split_role, stratified_holdout

    counts = selectors.dataset_training_counts(dataset)
    if not counts:
        return f"dataset {dataset.pk} has no faces to train on"
    train = [(label, n) for split, label, n in counts if split_role(split) == "train"]
    if not train:
        return (f"every face of dataset {dataset.pk} is in a validation or test split; training needs faces in a "
                "training split")
    if any(split_role(split) == "val" for split, _label, _n in counts):
        return ""
    labels = np.repeat([label for label, _ in train], [n for _, n in train])
    _keep, held = stratified_holdout(labels, validation_fraction, seed)
    if len(held) == 0:
        return (f"dataset {dataset.pk} is too small to hold out a validation split: it has one training face per "
                "class. Add faces (at least two of some class) or a validation split")
    return ""


# ---------------------------------------------------------------- events


_last_publish_warning = 0.0


def publish(run_id: int, event: dict) -> None:
    """Send one typed event to the run's Channels group; a broker hiccup never stops training."""
    global _last_publish_warning
    try:
        async_to_sync(get_channel_layer().group_send)(f"run_{run_id}", event)
    except Exception as exc:  # noqa: BLE001 - progress is best effort, the database keeps the truth
        if time.monotonic() - _last_publish_warning > 60:  # once a minute, not once a batch
            _last_publish_warning = time.monotonic()
            logger.warning("could not publish %s for run %s: %s", event.get("type"), run_id, exc)


def _status_event(run: TrainingRun, message: str = "") -> dict:
    return {
        "type": "run.status",
        "run": run.pk,
        "status": run.status,
        "progress": selectors.run_progress(run),
        "message": message,
        "error": run.error,
        "human_readable_error": run.human_readable_error,
    }


# ---------------------------------------------------------------- create / cancel

PATH_FIELDS = {
    "init_checkpoint": "init_from_run (an earlier run) or upload a checkpoint file as init_checkpoint",
    "teacher_checkpoint": "teacher_run (an earlier run) or teacher_model (a model version, or default)",
}


@transaction.atomic
def run_create(
    *,
    user,
    dataset: Dataset,
    config: dict,
    name: str = "",
    init_from_run: TrainingRun | None = None,
    init_checkpoint: UploadedFile | None = None,
    teacher_run: TrainingRun | None = None,
    teacher_model: Path | None = None,
    queue: bool = True,
    trusted_paths: bool = False,
    preset: str = "",
    retrain_of: TrainingRun | None = None,
) -> TrainingRun:
    """1. check the user's quotas; 2. validate the recipe; 3. check the dataset is ready and the
    user's (or staff); 4. fit the recipe to the training worker (threads, memory); 5. seal the
    dataset's newest version, which the run trains on (later edits make new versions); 6. record the run; 7. queue it after commit (unless the
    caller runs it itself: the `train` command). `preset` (already merged into `config`, see
    recipe_from) only names the run when `name` is empty."""
    from ferweb.datasets.services import dataset_lock
    from ferweb.datasets.versions import version_seal

    quotas.check_active_runs(user)
    quotas.check_storage(user, init_checkpoint.size if init_checkpoint is not None else 0)
    config = dict(config)
    errors = {}
    if not (user.is_staff or dataset.owner_id == user.pk):
        errors["dataset"] = f"no dataset {dataset.pk}"
    elif refusal := dataset_refusal(dataset):
        errors["dataset"] = refusal
    if init_from_run is not None and not (user.is_staff or init_from_run.owner_id == user.pk):
        errors["init_from_run"] = f"no run {init_from_run.pk}"
    elif init_from_run is not None and init_from_run.status != TrainingRun.Status.SUCCEEDED:
        errors["init_from_run"] = f"run {init_from_run.pk} is {init_from_run.status}; fine-tune from a succeeded run"
    if init_from_run is not None and init_checkpoint is not None:
        errors["init_checkpoint"] = "give either an earlier run or a checkpoint file, not both"
    if teacher_run is not None and not (user.is_staff or teacher_run.owner_id == user.pk):
        errors["teacher_run"] = f"no run {teacher_run.pk}"
    elif teacher_run is not None and teacher_run.status != TrainingRun.Status.SUCCEEDED:
        errors["teacher_run"] = f"run {teacher_run.pk} is {teacher_run.status}; distil from a succeeded run"
    if teacher_run is not None and teacher_model is not None:
        errors["teacher_model"] = "give one teacher: an earlier run or a model, not both"
    validated = checked_recipe(config, dataset=dataset, errors=errors, trusted_paths=trusted_paths)
    if errors:
        raise RunError(errors)
    name = name or default_run_name(validated, dataset=dataset, preset=preset)
    validated, notes = fit_to_worker(validated, faces=dataset.num_items,
                                     teacher_architecture=teacher_run.architecture if teacher_run else "")

    if init_from_run is not None:
        validated["init_checkpoint"] = str(best_checkpoint_path(init_from_run))
    if teacher_run is not None:
        validated["teacher_checkpoint"] = str(best_checkpoint_path(teacher_run))
    dataset_lock(dataset=dataset)
    dataset_version = version_seal(dataset, user=user)  # the exact labels it trains on, never to change
    estimate = estimates.estimate_for(validated, split_counts=dataset.split_counts, class_counts=dataset.class_counts,
                                      num_items=dataset.num_items)
    run = TrainingRun.objects.create(
        owner=user,
        dataset=dataset,
        dataset_version=dataset_version,
        phase="queued",
        estimated_seconds=round(estimate.seconds, 1),
        name=name,
        config=validated,
        architecture=validated["architecture"],
        optimizer=validated["optimizer"],
        init_from_run=init_from_run,
        metrics={"notes": notes} if notes else {},
        retrain_of=retrain_of,
    )
    if init_checkpoint is not None:
        run.init_checkpoint.save(f"run-{run.pk}-{Path(init_checkpoint.name).name}", init_checkpoint, save=False)
        run.config = {**run.config, "init_checkpoint": run.init_checkpoint.path}
        run.save(update_fields=["init_checkpoint", "config"])
    if teacher_model is not None:
        # The run keeps its own copy: a resumed run must learn from the same teacher even if the
        # model it was picked from is republished or deleted meanwhile.
        copy = run.workdir / "teacher.onnx"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(teacher_model, copy)
        run.config = {**run.config, "teacher_checkpoint": str(copy)}
        run.save(update_fields=["config"])
    if queue:
        training_runs.enqueue(run.pk)
    return run


def checked_recipe(config: dict, *, dataset: Dataset, errors: dict, trusted_paths: bool = False) -> dict | None:
    """The validated recipe for training on `dataset`, or None; adds what is wrong to `errors` (a
    dataset already refused there is not split). Shared by run_create and run_estimate_for."""
    if not trusted_paths:
        # Checkpoint paths on the server are ours to set (from runs and uploads), never a web client's.
        for field, instead in PATH_FIELDS.items():
            if config.pop(field, ""):
                errors[field] = f"server paths cannot be given here; use {instead}"
    try:
        validated = validate_config(config)
    except RunError as exc:
        errors.update(exc.errors)
        return None
    if "dataset" not in errors:
        # Refused now rather than failing a second after it starts.
        too_small = holdout_error(dataset=dataset, validation_fraction=validated["validation_fraction"],
                                  seed=validated["seed"])
        if too_small:
            errors["dataset"] = too_small
    return validated


def dataset_refusal(dataset: Dataset) -> str:
    """Why a run cannot train on this dataset ("" when it can)."""
    if dataset.archived_at is not None:
        return (f"dataset {dataset.pk} was deleted; it is kept only for the runs already trained on it. "
                "Choose one of your ready datasets")
    if dataset.status != Dataset.Status.READY:
        return f"dataset {dataset.pk} is {dataset.status}; only ready datasets can be trained on"
    return ""


def run_create_for(
    *,
    user,
    dataset_id: int,
    config: dict,
    name: str = "",
    init_from_run_id: int | None = None,
    init_checkpoint: UploadedFile | None = None,
    teacher_run_id: int | None = None,
    teacher_model: str = "",
    preset: str | None = None,
) -> TrainingRun:
    """run_create from what a web client names by id (the API and the form page): 1. merge the preset's
    recipe under the client's values (recipe_from); 2. resolve the dataset, earlier runs and teacher model
    among those the user may see; 3. run_create."""
    config = recipe_from(preset, config)
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None or not (user.is_staff or dataset.owner_id == user.pk):
        raise RunError({"dataset": f"no dataset {dataset_id}; choose one of your ready datasets"})
    earlier = {}
    for field, run_id in (("init_from_run", init_from_run_id), ("teacher_run", teacher_run_id)):
        if run_id:
            earlier[field] = selectors.run_list_for(user).filter(pk=run_id).first()
            if earlier[field] is None:
                raise RunError({field: f"no run {run_id}"})
    return run_create(
        user=user, dataset=dataset, config=config, name=name,
        init_from_run=earlier.get("init_from_run"), init_checkpoint=init_checkpoint,
        teacher_run=earlier.get("teacher_run"), teacher_model=teacher_model_file(user=user, choice=teacher_model),
        preset=preset or "",
    )


def run_estimate_for(*, user, dataset_id: int, config: dict, preset: str | None = None) -> dict:
    """How long the run that run_create_for would create takes (estimates.Estimate.as_dict), after the
    same checks of the recipe and the dataset, with the same RunError; nothing is created. A recipe
    whose combination the training worker has not measured yet gets it measured (once)."""
    config = recipe_from(preset, config)
    dataset = Dataset.objects.filter(pk=dataset_id).first()
    if dataset is None or not (user.is_staff or dataset.owner_id == user.pk):
        raise RunError({"dataset": f"no dataset {dataset_id}; choose one of your ready datasets"})
    refusal = dataset_refusal(dataset)
    errors = {"dataset": refusal} if refusal else {}
    validated = checked_recipe(config, dataset=dataset, errors=errors)
    if errors:
        raise RunError(errors)
    validated, _notes = fit_to_worker(validated, faces=dataset.num_items)
    return estimates.estimate_for(validated, split_counts=dataset.split_counts, class_counts=dataset.class_counts,
                                  num_items=dataset.num_items, measure=True).as_dict()



# ---------------------------------------------------------------- train again on a newer dataset version

RETRAINED_SUFFIX = re.compile(r" \(retrained on v\d+\)$")


@transaction.atomic
def run_retrain(*, user, run: TrainingRun, force: bool = False) -> TrainingRun:
    """`run`'s recipe again, on the newest version of its dataset, as a new run that names it (retrain_of).

    1. seal the dataset's newest version (run_create records it as the one the new run trains on);
    2. refuse (RunError no_new_version) when it is the version the run trained on, or holds the same
       faces, labels and splits, unless `force`;
    3. the recipe, its starting weights and teacher kept only where their files still exist (retrain_sources);
    4. run_create, named "<the run's name> (retrained on vN)", with a note for each file left out.
    The caller has checked that `user` may see `run` (its owner or staff)."""
    from ferweb.datasets.versions import version_seal

    newest = version_seal(run.dataset, user=user)
    trained = selectors.run_dataset_version(run)
    if not force and trained is not None and (trained.pk == newest.pk or trained.content_hash == newest.content_hash):
        same = ("is the version" if trained.pk == newest.pk
                else f"holds the same faces, labels and splits as version {trained.number},")
        raise RunError({}, code="no_new_version", detail=(
            f"Nothing changed: version {newest.number} of dataset {run.dataset_id} {same} which run {run.pk} "
            "trained on. Relabel or exclude faces first, or send force: true to train on the same data again."))
    config, sources, notes = retrain_sources(run, user=user)
    base = RETRAINED_SUFFIX.sub("", run.name) or default_run_name(config, dataset=run.dataset)
    suffix = f" (retrained on v{newest.number})"
    try:
        created = run_create(user=user, dataset=run.dataset, config=config, name=base[:200 - len(suffix)] + suffix,
                             trusted_paths=True, retrain_of=run, **sources)
    finally:
        if "init_checkpoint" in sources:
            sources["init_checkpoint"].close()
    if notes:
        created.metrics = {**created.metrics, "notes": created.metrics.get("notes", []) + notes}
        created.save(update_fields=["metrics"])
    return created


def retrain_sources(run: TrainingRun, *, user) -> tuple[dict, dict, list[str]]:
    """What run_create takes to repeat `run`'s recipe: (the recipe, run_create's keyword arguments for the
    starting weights and the teacher, notes on the files that are gone and so left out).

    Starting weights come from the earlier run (init_from_run), a copy of the uploaded file (so deleting
    either run leaves the other whole), or the path the `train` command was given. A teacher is an exported
    model (copied, as run_create copies every .onnx teacher), an earlier run's best.pt (that run), or an
    ensemble, kept as it is. The recipe keeps only the paths that are not set through these arguments."""
    from django.core.files import File

    config = dict(run.config)
    init = str(config.pop("init_checkpoint", "") or "")
    teacher = str(config.pop("teacher_checkpoint", "") or "")
    sources, notes = {}, []
    if init and not Path(init).exists():
        notes.append(f"The starting weights of run {run.pk} ({Path(init).name}) no longer exist: this run starts "
                     "from random weights.")
    elif init and run.init_from_run is not None and init == str(best_checkpoint_path(run.init_from_run)):
        sources["init_from_run"] = run.init_from_run
    elif init and run.init_checkpoint and init == run.init_checkpoint.path:
        sources["init_checkpoint"] = File(open(init, "rb"), name=Path(init).name)
    elif init:
        config["init_checkpoint"] = init
    paths = [part.strip() for part in teacher.split(",") if part.strip()]
    missing = [path for path in paths if not Path(path).exists()]
    teacher_run = _checkpoint_run(paths[0]) if len(paths) == 1 else None
    if missing:
        notes.append(f"The teacher of run {run.pk} ({', '.join(Path(p).name for p in missing)}) no longer exists: "
                     "this run learns without a teacher.")
    elif len(paths) == 1 and paths[0].endswith(".onnx"):
        sources["teacher_model"] = Path(paths[0])
    elif teacher_run is not None and teacher_run.status == TrainingRun.Status.SUCCEEDED and (
            user.is_staff or teacher_run.owner_id == user.pk):
        sources["teacher_run"] = teacher_run
    elif paths:
        config["teacher_checkpoint"] = teacher
    return config, sources, notes


def _checkpoint_run(path: str) -> TrainingRun | None:
    """The run whose best.pt `path` is (runs/<id>/best.pt), if it still exists."""
    found = Path(path)
    if found.name != "best.pt" or not found.parent.name.isdigit():
        return None
    run = TrainingRun.objects.filter(pk=int(found.parent.name)).first()
    return run if run is not None and str(best_checkpoint_path(run)) == path else None


def teacher_model_file(*, user, choice: str | int | None) -> Path | None:
    """The ONNX file behind a teacher_model choice: 'default' (the shipped model) or a visible version id."""
    choice = str(choice or "").strip()
    if not choice:
        return None
    if choice == "default":
        path = Path(settings.FERWEB_DEFAULT_MODEL)
        if not path.exists():
            raise RunError({"teacher_model": "this installation ships no default model"})
        return path
    version = registry.model_list_for(user).filter(pk=int(choice)).first() if choice.isdigit() else None
    if version is None or not version.path.exists():
        raise RunError({"teacher_model": f"no model {choice}; give a model version id or default"})
    return version.path


MB = 1024 * 1024


def memory_cap_bytes() -> int:
    """What the training process may use (FERWEB_TRAIN_MAX_MEMORY_MB)."""
    return settings.FERWEB_TRAIN_MAX_MEMORY_MB * MB


def memory_inputs(config: dict, *, faces: int, teacher_architecture: str = "") -> dict:
    """The recipe's fields that the memory estimate depends on (see training_jobs.ml.memory)."""
    return {
        "architecture": config["architecture"], "optimizer": config["optimizer"], "momentum": config["momentum"],
        "ema": config["ema_decay"] > 0, "faces": faces, "teacher_architecture": teacher_architecture,
    }


def fit_to_worker(config: dict, *, faces: int, teacher_architecture: str = "") -> tuple[dict, list[str]]:
    """The recipe as the training worker can run it, and notes on what was changed.

    num_threads above the worker's cores (FERWEB_TRAIN_MAX_THREADS) is lowered to them, with a
    note: more threads than cores only slow training down. A batch whose estimated peak memory
    is over the cap is refused (code too_much_memory), naming the largest batch size that fits:
    only the user can choose between a smaller batch and a lighter network.
    """
    notes = []
    cores = settings.FERWEB_TRAIN_MAX_THREADS
    if config["num_threads"] > cores:
        notes.append(f"num_threads {config['num_threads']} was lowered to {cores}, the training worker's cores "
                     "(FERWEB_TRAIN_MAX_THREADS).")
        config = {**config, "num_threads": cores}
    inputs = memory_inputs(config, faces=faces, teacher_architecture=teacher_architecture)
    need, cap = memory.estimate_bytes(batch_size=config["batch_size"], **inputs), memory_cap_bytes()
    if need > cap:
        fits = memory.max_batch_size(cap_bytes=cap, **inputs)
        advice = (f"the largest batch size that fits is {fits}." if fits else
                  "not even a batch of 1 fits: choose a lighter architecture or a smaller dataset.")
        message = (f"A batch of {config['batch_size']} for {config['architecture']} on {faces:,} faces needs about "
                   f"{need / MB:,.0f} MB, over the {cap / MB:,.0f} MB the training worker may use "
                   f"(FERWEB_TRAIN_MAX_MEMORY_MB): {advice}")
        raise RunError({"batch_size": message}, code="too_much_memory", detail=message)
    return config, notes


class TrainingRuns(JobLifecycle):
    """Training runs as background jobs (ferweb.jobs); followers hear run.status events.

    A run that starts over resumes from its last epoch checkpoint. A cancelled run also gets
    cancel_requested, which the worker training it polls (ProgressRecorder.should_stop).
    """

    model = TrainingRun
    task = "training_jobs.tasks.train_run"
    queued, running = TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING
    failed, cancelled = TrainingRun.Status.FAILED, TrainingRun.Status.CANCELLED
    noun = "run"
    gave_up_advice = ("It resumed from its last epoch each time; a worker that keeps dying under one run is "
                      "often out of memory: try a smaller batch size or a lighter architecture.")
    cancel_fields = {"cancel_requested": True}
    claim_fields = {"phase": "preparing_data"}
    retry_fields = {"phase": "queued"}

    def publish(self, run: TrainingRun, message: str) -> None:
        publish(run.pk, _status_event(run, message))

    def sent(self, run_id: int, result) -> None:
        TrainingRun.objects.filter(pk=run_id).update(celery_task_id=getattr(result, "id", None) or "")

    def restart_refusal(self, run: TrainingRun) -> str:
        if run.dataset.status != Dataset.Status.READY:
            return (f"The worker {run.worker} died and dataset {run.dataset_id} is no longer ready, "
                    "so the run cannot resume.")
        return ""


training_runs = TrainingRuns()


@transaction.atomic
def run_cancel(*, run: TrainingRun) -> TrainingRun:
    """Cancel a queued or running run at once; the worker training it stops within a batch (it polls)."""
    training_runs.cancel(run)
    return run


def run_cancel_unfinished(*, run: TrainingRun) -> TrainingRun:
    """run_cancel for a person who asks to stop a run: RunError `already_finished` when it has ended."""
    if run.is_finished:
        raise RunError({}, code="already_finished",
                       detail=f"run {run.pk} already {run.status}; only queued or running runs can be cancelled")
    return run_cancel(run=run)


# ---------------------------------------------------------------- notes, tags, delete

MAX_NOTES = 5000  # characters
MAX_TAGS, MAX_TAG = 20, 32  # tags per run, characters per tag


@transaction.atomic
def run_annotate(*, run: TrainingRun, notes: str | None = None, tags: list[str] | None = None) -> TrainingRun:
    """Set the owner's notes and tags (None: unchanged). Tags are trimmed and kept once each, in order;
    RunError names the field when notes or tags are too long or too many."""
    errors, fields = {}, []
    if notes is not None:
        if len(notes) > MAX_NOTES:
            errors["notes"] = f"notes are at most {MAX_NOTES:,} characters; these have {len(notes):,}"
        run.notes = notes
        fields.append("notes")
    if tags is not None:
        cleaned = list(dict.fromkeys(str(tag).strip() for tag in tags))
        bad = next((tag for tag in cleaned if not 1 <= len(tag) <= MAX_TAG), None)
        if bad is not None:
            errors["tags"] = (f"a tag is 1-{MAX_TAG} characters; " +
                              (f"{bad[:MAX_TAG]}... has {len(bad)}" if bad else "one is empty"))
        elif len(cleaned) > MAX_TAGS:
            errors["tags"] = f"a run has at most {MAX_TAGS} tags; these are {len(cleaned)}"
        run.tags = cleaned
        fields.append("tags")
    if errors:
        raise RunError(errors)
    if fields:
        run.save(update_fields=fields)
    return run


def _checkpoint_users(run: TrainingRun) -> list[int]:
    """Queued or running runs that start from this run's weights or learn from them (they read its files)."""
    folder = str(run.workdir)
    active = TrainingRun.objects.filter(status__in=(TrainingRun.Status.QUEUED, TrainingRun.Status.RUNNING))
    return [other.pk for other in active.exclude(pk=run.pk).only("id", "config")
            if any(str(other.config.get(key) or "").startswith(folder + "/")
                   for key in ("init_checkpoint", "teacher_checkpoint"))]


def _refusal(run: TrainingRun) -> RunError | None:
    if not run.is_finished:
        return RunError({}, code="still_running",
                        detail=f"Run {run.pk} is {run.status}: cancel it first, then delete it.")
    users = _checkpoint_users(run)
    if users:
        names = ", ".join(f"#{pk}" for pk in users)
        return RunError({}, code="in_use",
                        detail=f"Run {run.pk}'s weights are used by unfinished run{'s' if len(users) > 1 else ''} "
                               f"{names}: wait for {'them' if len(users) > 1 else 'it'} to end, or cancel "
                               f"{'them' if len(users) > 1 else 'it'}, then delete it.")
    return None


def _run_files(run: TrainingRun) -> list[Path]:
    """Its checkpoints (and a teacher's copy) and the weights uploaded to start it from."""
    files = [run.workdir]
    if run.init_checkpoint:
        files.append(Path(settings.MEDIA_ROOT) / run.init_checkpoint.name)
    return files


def _dataset_goes_with(run: TrainingRun) -> Dataset | None:
    """The archived dataset that only this run still keeps, which its deletion removes too."""
    dataset = run.dataset
    if dataset.archived_at is None or TrainingRun.objects.filter(dataset=dataset).exclude(pk=run.pk).exists():
        return None
    return dataset


def run_delete_preview(*, run: TrainingRun):
    """What run_delete would do, or why it refuses (the sentence says so and nothing is freed)."""
    from ferweb.deletion import DeletePreview, bytes_on_disk, count

    refusal = _refusal(run)
    if refusal is not None:
        return DeletePreview(what=refusal.detail, frees_bytes=0)
    what = f"Run #{run.pk} \"{run.name}\" will be deleted with its checkpoints, history and evaluation."
    frees = bytes_on_disk(*_run_files(run))
    versions = list(run.model_versions.values_list("version", flat=True))
    if len(versions) == 1:
        what += f" Its model {versions[0]} stays on the Models page and keeps serving wherever it is active."
    elif versions:
        what += (f" Its models {', '.join(versions)} stay on the Models page and keep serving wherever they are "
                 "active.")
    dataset = _dataset_goes_with(run)
    if dataset is not None:
        what += (f" The deleted dataset #{dataset.pk} \"{dataset.name}\" that only this run kept goes too "
                 f"({count(dataset.num_items, 'face')}).")
        frees += bytes_on_disk(dataset.storage_dir)
    return DeletePreview(what=what, frees_bytes=frees)


@transaction.atomic
def run_delete(*, run: TrainingRun) -> None:
    """Delete a finished run: its row, history, metrics, checkpoints and uploaded weights.

    1. refuse a queued or running run (RunError still_running: cancel it first, so its worker has
       stopped writing checkpoints) and one whose weights an unfinished run starts or learns from
       (in_use);
    2. its model versions stay and keep serving wherever they are active; they no longer name
       the run (the post_delete receiver in models.py);
    3. the archived dataset it was trained on goes too when no other run keeps it (its owner
       deleted it already; it stayed only for its runs);
    4. the files go once the transaction commits.
    """
    from ferweb.datasets.services import dataset_delete

    run = TrainingRun.objects.select_for_update().select_related("dataset").get(pk=run.pk)
    refusal = _refusal(run)
    if refusal is not None:
        raise refusal
    files, dataset = _run_files(run), _dataset_goes_with(run)
    run.delete()
    if dataset is not None:
        dataset_delete(dataset=dataset)

    def remove_files():
        for path in files:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    transaction.on_commit(remove_files)


# ---------------------------------------------------------------- the job


class ProgressRecorder:
    """The trainer's on_event and should_stop for one run: the one place where the trainer's events
    become the run's row (phase, percent, seconds left, history) and its websocket events.

    The trainer's events say what happened (a phase began, a batch, an epoch); a RunClock, started
    from the run's estimate, turns them into `progress` {percent, phase, eta_seconds}, which every
    published event carries. Each epoch also refreshes the measured throughput of the run's
    combination (estimates.throughput_from_epochs).
    """

    DB_BATCH_INTERVAL_S = 1.0  # how often batch progress is written to the row
    CANCEL_POLL_INTERVAL_S = 0.5  # how often the cancel flag is read

    def __init__(self, run: TrainingRun, also=None):
        self.run = run
        self.also = also  # another listener, e.g. the command line's progress bar (gets the trainer's events)
        self.last_batch_write = 0.0
        self.last_cancel_poll = 0.0
        self.cancelled = False
        self.history = list(run.history)
        self.device = ""  # the trainer names it when training starts
        self.clock = estimates.RunClock(estimates.estimate_for_run(run), now=time.monotonic(),
                                        phase=run.phase if run.phase in estimates.PHASES else "preparing_data")

    def on_event(self, event: dict) -> None:
        kind = event.get("type")
        now = time.monotonic()
        published = {**event, "run": self.run.pk}
        published.pop("eta_seconds", None)  # the trainer's counts training only; progress.eta_seconds counts all
        write = False
        if kind == "run.status":
            # The trainer's phases (training, evaluating, ...) are data; the run itself is running.
            self.clock.enter(event.get("phase") or self.clock.phase, now)
            self.device = event.get("device") or self.device
            published["status"] = TrainingRun.Status.RUNNING
            write = True
        elif kind == "run.epoch":
            self.clock.epoch(event, now)
            self.history = [h for h in self.history if h.get("epoch") != event.get("epoch")] + [
                {**event, "run": self.run.pk}]
            estimates.throughput_from_epochs(self.run.config, device=self.device, history=self.history,
                                             source=f"run {self.run.pk}")
            write = True
        elif kind == "run.batch":
            self.clock.batch(event, now)
            write = now - self.last_batch_write >= self.DB_BATCH_INTERVAL_S
        progress = self.clock.progress(now)
        published["progress"] = progress
        if write:
            fields = {"last_batch": published} if kind == "run.batch" else {}
            if kind == "run.epoch":
                fields.update(history=self.history, best_val_accuracy=event.get("best_val_accuracy"),
                              best_epoch=event.get("best_epoch"))
            training_runs.heartbeat(self.run, progress=progress["percent"], eta_seconds=progress["eta_seconds"],
                                    phase=progress["phase"], **fields)
            self.last_batch_write = now
        transaction.on_commit(lambda: publish(self.run.pk, published))
        if self.also:
            self.also({**event, "run": self.run.pk})

    def tick(self) -> None:
        """The worker's heartbeat while the child is busy without events (evaluation, occlusion maps,
        export): the row and the page get the percent and seconds left as the time passes."""
        progress = self.clock.progress(time.monotonic())
        training_runs.heartbeat(self.run, progress=progress["percent"], eta_seconds=progress["eta_seconds"],
                                phase=progress["phase"])
        event = {"type": "run.progress", "run": self.run.pk, "status": TrainingRun.Status.RUNNING,
                 "progress": progress}
        transaction.on_commit(lambda: publish(self.run.pk, event))

    def phase_seconds(self) -> dict[str, float]:
        return self.clock.phase_seconds(time.monotonic())

    def should_stop(self) -> bool:
        now = time.monotonic()
        if not self.cancelled and now - self.last_cancel_poll >= self.CANCEL_POLL_INTERVAL_S:
            self.last_cancel_poll = now
            # Cancelled, or no longer this worker's (given up, deleted): stop either way.
            self.cancelled = not training_runs.held(self.run).filter(cancel_requested=False).exists()
        return self.cancelled


def run_claim(*, run_id: int, worker: str) -> TrainingRun | None:
    """Take a queued run for this worker; None when it is gone, cancelled or taken."""
    return TrainingRun.objects.get(pk=run_id) if training_runs.claim(run_id, worker=worker) else None


def run_claim_next(*, worker: str) -> TrainingRun | None:
    """Take the fair next queued run (see selectors.run_next_fair_id); None when none is queued.

    Another worker may take the same run between the read and the claim: then look again.
    """
    from training_jobs.selectors import run_next_fair_id

    while (run_id := run_next_fair_id()) is not None:
        run = run_claim(run_id=run_id, worker=worker)
        if run is not None:
            return run
    return None


def run_execute(*, run_id: int, worker: str, on_event=None) -> TrainingRun | None:
    """Claim this run and do its whole job (the `train` command); None when it was not queued."""
    run = run_claim(run_id=run_id, worker=worker)
    return _execute(run, on_event=on_event) if run else None


def run_execute_next(*, worker: str, on_event=None) -> TrainingRun | None:
    """Claim the fair next run and do its whole job (the Celery task); None when none is queued."""
    run = run_claim_next(worker=worker)
    return _execute(run, on_event=on_event) if run else None


class RunCancelled(Exception):
    """The user cancelled the run while it trained."""


def _execute(run: TrainingRun, on_event=None) -> TrainingRun:
    """1. read the dataset's rows; 2. train, evaluate and export in a child process (resuming
    from the last epoch checkpoint if an earlier worker died); 3. record the metrics and the
    model version; 4. succeed. Cancellation and errors end the run as cancelled or failed.
    """
    try:
        _train_evaluate_export(run, on_event=on_event)
    except RunCancelled:  # already ended when the run itself was cancelled: then this writes nothing
        training_runs.finish(run, TrainingRun.Status.CANCELLED, error="cancelled", message="Cancelled while training.")
    except RunFailure as exc:
        training_runs.finish(run, TrainingRun.Status.FAILED, error=exc.code, message=str(exc))
    except Exception as exc:  # noqa: BLE001 - every failure ends the run with a reason
        logger.exception("run %s failed", run.pk)
        training_runs.finish(run, TrainingRun.Status.FAILED, error="internal_error",
                             message=f"{type(exc).__name__}: {str(exc)[:500]}")
    if not TrainingRun.objects.filter(pk=run.pk).exists():
        # Deleted once cancelled, while this worker was still stopping: leave none of its files behind.
        shutil.rmtree(run.workdir, ignore_errors=True)
        return run
    run.refresh_from_db()
    return run


def load_train_data(run: TrainingRun):
    """The faces the run trains on as TrainData (pixels uint8 [N, 48, 48], labels, split names)."""
    from training_jobs.ml.data import TrainData

    rows, labels, splits, _ids = run_training_rows(run)
    pixels = np.load(run.dataset.pixels_path, mmap_mode="r")
    return TrainData(pixels=np.ascontiguousarray(pixels[rows]), labels=labels, splits=splits)


def run_training_rows(run: TrainingRun) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """run_rows as the run trains on them: a retrain's split names keep its older run's hold-out
    (keep_holdout_of). Every reader of a run's training data starts here."""
    rows, labels, splits, ids = run_rows(run)
    if run.retrain_of_id:
        splits = keep_holdout_of(run.retrain_of, ids, splits)
    return rows, labels, splits, ids


HELD_OUT_SPLIT = "val"


def keep_holdout_of(older: TrainingRun, ids: np.ndarray, splits: np.ndarray) -> np.ndarray:
    """A retrain validates (and, without a test split, evaluates) on the faces its older run held out of
    training, so the two are scored on the same faces. A stratified hold-out drawn again from the newer
    labels would share a tenth of them; here the older run's held-out faces that are still in the newer
    version are named the validation split. Nothing changes when the newer version has a split of its
    own for validation."""
    from training_jobs.ml.config import TrainConfig
    from training_jobs.ml.data import split_arrays, split_roles

    roles = split_roles(splits)
    if (roles == "val").any():
        return splits
    try:  # the older run's own training rows: a retrain of a retrain keeps the first one's hold-out
        _rows, old_labels, old_splits, old_ids = run_training_rows(older)
    except RunFailure:
        return splits  # the older run's data is gone: a hold-out of its own
    config = TrainConfig.from_dict(older.config)
    held = old_ids[split_arrays(old_labels, old_splits, validation_fraction=config.validation_fraction,
                                seed=config.seed).val]
    moved = np.isin(ids, held) & (roles == "train")
    if not moved.any():
        return splits
    splits = splits.astype(object)
    splits[moved] = HELD_OUT_SPLIT
    return splits.astype(str)


def run_rows(run: TrainingRun) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(rows in the packed faces, labels, splits, item ids) of the faces the run trains on: those of the
    dataset version it recorded (the dataset's items now, for a run older than versions)."""
    from ferweb.datasets.selectors import dataset_rows
    from ferweb.datasets.versions import version_rows

    dataset = run.dataset
    if dataset.status != Dataset.Status.READY:
        raise RunFailure("dataset_unavailable", f"Dataset {dataset.pk} is {dataset.status}, not ready.")
    if not dataset.pixels_path.exists():
        raise RunFailure("dataset_unavailable", f"The faces of dataset {dataset.pk} are missing on disk.")
    try:
        found = version_rows(run.dataset_version) if run.dataset_version_id else dataset_rows(dataset)
    except FileNotFoundError:
        raise RunFailure("dataset_unavailable",
                         f"Version {run.dataset_version.number} of dataset {dataset.pk} is missing on disk.") from None
    if len(found[0]) == 0:
        raise RunFailure("dataset_empty", f"Dataset {dataset.pk} has no faces to train on.")
    return found


def run_splits(run_id: int):
    """(run, TrainData, DataSplits): a run's dataset split exactly as its training split it."""
    from training_jobs.ml.config import ConfigError, TrainConfig
    from training_jobs.ml.data import split_data

    run = TrainingRun.objects.filter(pk=run_id).select_related("dataset", "dataset_version").first()
    if run is None:
        raise RunFailure("no_run", f"no run {run_id}")
    try:
        config = TrainConfig.from_dict(run.config)
    except ConfigError as exc:
        raise RunFailure("invalid_config", f"The recipe is no longer valid: {exc}") from None
    data = load_train_data(run)
    return run, data, split_data(data, validation_fraction=config.validation_fraction, seed=config.seed)


def best_checkpoint_path(run: TrainingRun) -> Path:
    return run.workdir / "best.pt"


def _train_evaluate_export(run: TrainingRun, on_event=None) -> None:
    from training_jobs.ml.isolated import run_isolated

    version = f"run-{run.pk}-{run.architecture}"
    onnx_path = Path(settings.MEDIA_ROOT) / "models" / f"{version}.onnx"
    recorder = ProgressRecorder(run, also=on_event)
    run.workdir.mkdir(parents=True, exist_ok=True)
    job, item_ids = _job_for(run, onnx_path=onnx_path, version=version)
    outcome = run_isolated(
        job, on_event=recorder.on_event,
        should_stop=recorder.should_stop, memory_cap_bytes=memory_cap_bytes(),
        on_tick=recorder.tick,
    )
    if outcome.status == "cancelled":
        raise RunCancelled()
    if outcome.code == "out_of_memory":
        raise RunFailure("out_of_memory", out_of_memory_message(run, outcome.peak_rss_bytes))
    if outcome.status != "succeeded":
        raise RunFailure(outcome.code, outcome.message)
    result = outcome.result

    run.refresh_from_db()
    metrics = dict(result["metrics"])
    # Notes made when the run was created (e.g. threads lowered) come first.
    metrics["notes"] = list(run.metrics.get("notes", [])) + list(metrics.get("notes", []))
    metrics["occlusion"] = occlusion_for_page(result["occlusion"])
    metrics["phase_seconds"] = recorder.phase_seconds()  # what later estimates take preparing and export from
    if result.get("evaluation"):  # the faces behind the confusion matrix, under their items' ids
        from training_jobs.evaluation_faces import evaluation_save

        evaluation_save(run=run, evaluation=result["evaluation"], item_ids=item_ids)
    with transaction.atomic():  # the outcome and its model version together, or neither
        if not training_runs.finish(
            run, TrainingRun.Status.SUCCEEDED, progress=100.0, history=result["history"],
            param_count=result["param_count"], wall_time_s=result["wall_time_s"], best_epoch=result["best_epoch"],
            best_val_accuracy=result["best_val_accuracy"], eta_seconds=0, metrics=metrics,
        ):
            onnx_path.unlink(missing_ok=True)  # cancelled at the last moment
            raise RunCancelled()
        model_version_create(
            run_id=run.pk, owner=run.owner, onnx_file=str(onnx_path.relative_to(settings.MEDIA_ROOT)),
            architecture=run.architecture, version=version, metrics=result["export"]["metrics"],
            param_count=run.param_count, latency_ms=result["export"]["latency_ms"],
            parity_max_abs_diff=result["export"]["max_abs_diff"],
        )


def _job_for(run: TrainingRun, *, onnx_path: Path, version: str):
    """The child's plain inputs (the recipe, which packed faces to read, where to write), and the ids of
    the items those faces are, in the same order (the child knows faces by position only)."""
    from training_jobs.ml.isolated import Job

    rows, labels, splits, item_ids = run_training_rows(run)
    return Job(config=run.config, pixels_path=str(run.dataset.pixels_path), rows=rows, labels=labels, splits=splits,
               workdir=str(run.workdir), onnx_path=str(onnx_path), version=version), item_ids


def out_of_memory_message(run: TrainingRun, peak_bytes: int) -> str:
    """What to try after a run ran out of memory: the largest batch the estimate says fits,
    and at most half the batch that did not."""
    config = run.config
    batch = config["batch_size"]
    cap = memory_cap_bytes()
    inputs = memory_inputs(config, faces=run.dataset.num_items,
                           teacher_architecture=_teacher_architecture(run))
    try:
        fits = memory.max_batch_size(cap_bytes=cap, **inputs)
    except KeyError:  # an architecture the table does not know
        fits = batch // 2
    fits = min(fits, batch // 2)
    advice = (f"try {fits}, or a lighter architecture." if fits else
              "not even a batch of 1 fits: try a lighter architecture.")
    used = f"the training process reached {peak_bytes / MB:,.0f} MB; " if peak_bytes else ""
    return (f"Ran out of memory at batch size {batch} ({used}the worker may use {cap / MB:,.0f} MB, "
            f"FERWEB_TRAIN_MAX_MEMORY_MB): {advice}")


def _teacher_architecture(run: TrainingRun) -> str:
    """The network of a best.pt teacher (an earlier run's, runs/<id>/best.pt); "" for none, or for
    an .onnx teacher, which costs a table of logits rather than a network."""
    path = Path(run.config.get("teacher_checkpoint") or "")
    if path.suffix != ".pt" or not path.parent.name.isdigit():
        return ""
    return TrainingRun.objects.filter(pk=int(path.parent.name)).values_list("architecture", flat=True).first() or ""


def occlusion_for_page(items: list[dict]) -> list[dict]:
    """The trainer's occlusion maps made light enough to store with the run and draw:
    the face as a PNG data URL and the drop of its true class's probability on a 24x24 grid."""
    import base64

    import cv2

    out = []
    for item in items:
        face = np.asarray(item["face"], dtype=np.uint8)
        ok, png = cv2.imencode(".png", face)
        drops = np.asarray(item["map"], dtype=np.float32)
        coarse = drops.reshape(24, drops.shape[0] // 24, 24, drops.shape[1] // 24).mean(axis=(1, 3))
        out.append({
            "label": item["label"],
            "predicted": item.get("predicted_label", item["label"]),
            "base_prob": item.get("base_prob"),
            "face": "data:image/png;base64," + base64.b64encode(png.tobytes()).decode(),
            "map": np.round(coarse, 3).tolist(),
            "patch": item.get("patch"),
            "stride": item.get("stride"),
        })
    return out
