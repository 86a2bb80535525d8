"""Background jobs: one record shape and one lifecycle for every kind of long job.

Dataset imports, labeling sets, inference jobs and training runs are each a row of a model that
inherits `Job`, and one `JobLifecycle` per kind moves those rows through their states:

    queued --claim--> running --finish / cancel--> the kind's end states (ready or succeeded, failed, cancelled)
      ^                  |
      +-- worker lost ---+   restarted with one attempt used, or failed as `worker_lost` after
                             FERWEB_JOB_MAX_ATTEMPTS starts

The rules every kind follows:
- A worker *holds* a job while `heartbeat_at` is set: a claim sets it with `worker` and one more
  attempt; every end and every re-queue clears both. A kind whose queued and running jobs share one
  status (an import is `importing` from upload to end) tells them apart by that alone.
- A held job is *lost* when a starting worker has the name of the one that holds it (names are unique
  among live workers, so the holder died), or when its heartbeat is older than
  FERWEB_JOB_STALE_SECONDS. A lost job is taken on the heartbeat that was seen, so two workers that
  notice it at the same moment never both restart it.
- Tasks are sent and events published only once the transaction that changed the row commits:
  a change that is rolled back never reaches a worker or a browser.
- Every worker, when it starts, recovers the lost jobs of the kinds whose queue it consumes.

This module imports no app: every app may build on it.
"""
from __future__ import annotations

import logging
from datetime import timedelta

from celery.signals import worker_ready
from django.conf import settings
from django.db import close_old_connections, models, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

STATUS_HELP = "Where the job is in its lifecycle; the choices are the states of this kind of job."
WORKER_LOST = "worker_lost"
CANCELLED = "cancelled"


class Job(models.Model):
    """The columns every background job shares; each kind adds its own (and its states, see status_field)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, help_text="Who started the job; they and staff see it."
    )
    status = models.CharField(max_length=16, db_index=True, help_text=STATUS_HELP)
    progress = models.FloatField(default=0, help_text="How far the job is, 0-100.")
    phase = models.CharField(
        max_length=32, blank=True,
        help_text="What the job is doing now, as a short code the pages name (e.g. checking_archive, training).",
    )
    error = models.CharField(max_length=64, blank=True, help_text="Machine-readable error code, e.g. worker_lost.")
    human_readable_error = models.TextField(blank=True, help_text="What went wrong, for a person.")
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a worker started the job, restarts after a worker died included."
    )
    worker = models.CharField(
        max_length=255, blank=True, help_text="Name of the Celery worker that holds the job; empty while none does."
    )
    heartbeat_at = models.DateTimeField(
        null=True, blank=True, help_text="Last sign of life from the worker that holds the job; empty while none does."
    )
    created_at = models.DateTimeField(auto_now_add=True, help_text="When the job was created.")
    started_at = models.DateTimeField(null=True, blank=True, help_text="When a worker first started the job.")
    finished_at = models.DateTimeField(null=True, blank=True, help_text="When the job last ended, whatever the outcome.")

    class Meta:
        abstract = True


def status_field(states: type[models.TextChoices], *, default: str) -> models.CharField:
    """The shared `status` column with one kind's states as its choices."""
    return models.CharField(
        max_length=16, choices=states.choices, default=default, db_index=True, help_text=STATUS_HELP
    )


KINDS: list[JobLifecycle] = []  # one lifecycle per kind of job, for the recovery at worker start


class JobLifecycle:
    """Queue, claim, heartbeat, finish, cancel and recover the jobs of one kind.

    A kind subclasses it: names its model, its states and its Celery task (which takes the job's
    id), and overrides the hooks it needs. Its one instance serves the kind's services and task.
    """

    model: type[Job]
    task: str  # dotted path of the Celery task that runs one job, given its id
    queued: str
    running: str  # may be the same value as `queued` (see the module's docstring)
    failed: str
    cancelled: str = ""  # a kind without a cancelled state ends a cancelled job as failed (error "cancelled")
    noun = "job"  # in messages: "The import stopped 2 times ..."
    gave_up_advice = ""  # what a person can do about a job that was given up
    retry_fields: dict = {}  # written when a lost job starts over (e.g. its progress back to 0)
    cancel_fields: dict = {}  # written as well when a job is cancelled
    claim_fields: dict = {}  # written as well when a worker takes a job (e.g. the phase it starts in)

    def __init__(self):
        KINDS.append(self)

    # ------------------------------------------------------------ hooks

    def publish(self, job: Job, message: str) -> None:
        """Tell whoever follows the job (a Channels group) that it changed; runs after commit."""

    def ended(self, job: Job) -> None:
        """Clean up after the job ended (e.g. remove an upload it no longer needs); runs inside the
        transaction that ended it, so file removals belong in `transaction.on_commit`."""

    def sent(self, job_id: int, result) -> None:
        """The task message for the job has been sent (`result` is Celery's AsyncResult)."""

    def restart_refusal(self, job: Job) -> str:
        """Why a lost job cannot start over whatever its attempts ('' when it can)."""
        return ""

    # ------------------------------------------------------------ queue

    def task_function(self):
        return import_string(self.task)

    def queue(self) -> str:
        """The Celery queue the kind's task is routed to (CELERY_TASK_ROUTES)."""
        return task_queue(self.task)

    def queues(self) -> set[str]:
        """Every queue the kind's jobs are sent to, whose workers recover them: the task's queue,
        and more where `_send` sends some jobs another task."""
        return {self.queue()}

    def enqueue(self, job_id: int) -> None:
        """Send the job's task once the current transaction commits (at once outside of one)."""
        transaction.on_commit(lambda: self._send(job_id))

    def _send(self, job_id: int) -> None:
        self.sent(job_id, self.task_function().delay(job_id))

    def notify(self, job: Job, message: str, *, send: bool = False) -> None:
        """Publish the job's change (and send its task again, with `send`) once the transaction commits."""

        def after_commit():
            if send:
                self._send(job.pk)
            self.publish(job, message)

        transaction.on_commit(after_commit)

    # ------------------------------------------------------------ the worker's side

    def claim(self, job_id: int, *, worker: str, redelivered: bool = False) -> bool:
        """Take the job for `worker`: a queued one, or a lost one, which then starts over.

        `redelivered`: the broker hands this task out again because the process that ran it died
        while its worker lived on (a pool child killed, e.g. by the out-of-memory killer). The job
        is then held under this very worker's name, and only a redelivery may take it from that
        name: a second message for a job that a sibling process runs must not.
        """
        worker, now = worker[:255], timezone.now()
        with transaction.atomic():
            claimed = self.model.objects.filter(pk=job_id, status=self.queued, heartbeat_at__isnull=True).update(
                status=self.running, worker=worker, heartbeat_at=now, attempts=F("attempts") + 1,
                started_at=Coalesce(F("started_at"), now), error="", human_readable_error="", **self.claim_fields,
            )
            if claimed:
                job = self.model.objects.get(pk=job_id)
                self.notify(job, "resumed" if job.attempts > 1 else "started")
                return True
            job = self.model.objects.filter(pk=job_id, status=self.running, heartbeat_at__isnull=False).first()
            if job is None or not self.is_lost(job, restarting_worker=worker if redelivered else ""):
                return False
            return self._restart(job, take_over_as=worker) == "taken"

    def held(self, job: Job) -> models.QuerySet:
        """The job's row while the worker named in `job.worker` still holds it."""
        return self.model.objects.filter(pk=job.pk, status=self.running, worker=job.worker, heartbeat_at__isnull=False)

    def heartbeat(self, job: Job, **fields) -> bool:
        """The holder is alive (and writes `fields`, e.g. progress). False when the job is no longer
        its own (cancelled, deleted or taken over): the holder then stops."""
        return self.held(job).update(heartbeat_at=timezone.now(), **fields) == 1

    def finish(self, job: Job, status: str, *, error: str = "", message: str = "", **fields) -> bool:
        """End a job the caller holds with `status` (and `fields`); False, and nothing written, when
        it is no longer the caller's."""
        with transaction.atomic():
            if not self.held(job).update(
                status=status, error=error[:64], human_readable_error=message, finished_at=timezone.now(),
                heartbeat_at=None, worker="", **{"phase": "", **fields},
            ):
                return False
            job.refresh_from_db()
            self.ended(job)
            self.notify(job, message or status)
        return True

    # ------------------------------------------------------------ cancel

    def cancel(self, job: Job) -> bool:
        """Stop a queued or running job at once; False when it had already ended. A worker that
        holds it finds out at its next heartbeat, which answers False, and stops."""
        with transaction.atomic():
            active = self.model.objects.select_for_update().filter(pk=job.pk, status__in={self.queued, self.running})
            current = active.first()
            if current is None:
                job.refresh_from_db()
                return False
            message = "Cancelled while it ran." if current.heartbeat_at else "Cancelled before it started."
            active.update(
                status=self.cancelled or self.failed, error=CANCELLED, human_readable_error=message,
                finished_at=timezone.now(), heartbeat_at=None, worker="", **{"phase": "", **self.cancel_fields},
            )
            job.refresh_from_db()
            self.ended(job)
            self.notify(job, CANCELLED)
        return True

    # ------------------------------------------------------------ lost workers

    def is_lost(self, job: Job, *, restarting_worker: str = "") -> bool:
        """A held job whose worker died: `restarting_worker` is its holder's name, or it is silent too long."""
        stale = job.heartbeat_at < timezone.now() - timedelta(seconds=settings.FERWEB_JOB_STALE_SECONDS)
        return (bool(restarting_worker) and job.worker == restarting_worker) or stale

    def recover(self, *, worker: str) -> dict[str, list[int]]:
        """When a worker starts: restart or give up the lost jobs of this kind, then send every
        queued one its task again.

        1. lost: held under `worker`'s name (its previous life) or silent past FERWEB_JOB_STALE_SECONDS;
        2. each goes back to the queue with one attempt used, or fails as worker_lost after its last;
        3. a queued job whose message was lost (a broker restarted without its data) would wait
           forever; a second message is harmless, since only one delivery can claim it.
        Returns the ids of the jobs re-queued and of those that failed.
        """
        outcome: dict[str, list[int]] = {"requeued": [], "failed": []}
        stale = timezone.now() - timedelta(seconds=settings.FERWEB_JOB_STALE_SECONDS)
        lost = self.model.objects.filter(status=self.running, heartbeat_at__isnull=False).filter(
            Q(worker=worker[:255]) | Q(heartbeat_at__lt=stale)
        )
        for job in lost:
            result = self._restart(job)
            if result in outcome:
                outcome[result].append(job.pk)
        queued = self.model.objects.filter(status=self.queued, heartbeat_at__isnull=True)
        for job_id in queued.exclude(pk__in=outcome["requeued"]).values_list("pk", flat=True):
            self.enqueue(job_id)
        return outcome

    def _restart(self, job: Job, *, take_over_as: str = "") -> str | None:
        """A lost job starts over: back to the queue, or (`take_over_as`) held by that worker at once.

        It fails as worker_lost instead when its attempts are used up or the kind refuses.
        Returns "requeued", "taken", "failed", or None when another worker acted on it first.
        """
        seen = self.model.objects.filter(
            pk=job.pk, status=self.running, worker=job.worker, heartbeat_at=job.heartbeat_at
        )
        refusal = self.restart_refusal(job)
        if refusal or job.attempts >= settings.FERWEB_JOB_MAX_ATTEMPTS:
            return "failed" if self.give_up(job, refusal or self.gave_up_message(job), only=seen) else None
        lost_worker = job.worker
        with transaction.atomic():
            if take_over_as:
                taken = seen.update(
                    worker=take_over_as, heartbeat_at=timezone.now(), attempts=F("attempts") + 1,
                    **{**self.retry_fields, **self.claim_fields},
                )
            else:
                taken = seen.update(status=self.queued, worker="", heartbeat_at=None, **self.retry_fields)
            if not taken:
                return None
            job.refresh_from_db()
            if take_over_as:
                self.notify(job, f"the worker {lost_worker} was lost; resumed")
                return "taken"
            self.notify(job, f"the worker {lost_worker} was lost; queued again", send=True)
            return "requeued"

    def gave_up_message(self, job: Job) -> str:
        message = (
            f"The {self.noun} stopped {job.attempts} times because its worker ended (crashed, killed or out of "
            "memory) and was given up."
        )
        return f"{message} {self.gave_up_advice}" if self.gave_up_advice else message

    def give_up(self, job: Job, message: str, *, error: str = WORKER_LOST, only: models.QuerySet | None = None) -> bool:
        """Fail a lost job for good; False when it is no longer running (or no longer as `only` saw it)."""
        rows = only if only is not None else self.model.objects.filter(pk=job.pk, status=self.running)
        with transaction.atomic():
            if not rows.update(
                status=self.failed, error=error, human_readable_error=message, finished_at=timezone.now(),
                heartbeat_at=None, worker="", phase="",
            ):
                return False
            job.refresh_from_db()
            self.ended(job)
            self.notify(job, message)
        return True


def task_queue(task_path: str) -> str:
    """The Celery queue a task (by dotted path) is routed to (CELERY_TASK_ROUTES)."""
    task = import_string(task_path)
    return task.app.amqp.router.route({}, task.name)["queue"].name


def recover_jobs(*, worker: str, queues: set[str] | None = None) -> dict[str, dict[str, list[int]]]:
    """Recover the jobs of every kind whose task goes to one of `queues` (every kind when None)."""
    recovered = {}
    for kind in KINDS:
        label = kind.model._meta.label
        try:
            if queues is None or kind.queues() & queues:
                recovered[label] = kind.recover(worker=worker)
        except Exception:  # one kind's trouble must not keep the others, or the worker, down
            logger.exception("recovering %s jobs for worker %s failed", label, worker)
    return recovered


@worker_ready.connect
def recover_jobs_at_worker_start(sender=None, **kwargs):
    """A starting worker recovers what its previous life (same name) or a silent worker left running.

    The kinds are those whose task modules the worker has loaded (Celery imports every app's
    tasks, and each tasks module imports its lifecycle) and whose queue it consumes (-Q).
    """
    hostname = getattr(sender, "hostname", None)
    if not hostname:
        return
    try:
        queues = set(sender.app.amqp.queues.consume_from)
    except AttributeError:
        queues = None
    close_old_connections()
    recovered = recover_jobs(worker=hostname, queues=queues)
    changed = {label: outcome for label, outcome in recovered.items() if outcome["requeued"] or outcome["failed"]}
    if changed:
        logger.warning("worker %s recovered lost jobs: %s", hostname, changed)
