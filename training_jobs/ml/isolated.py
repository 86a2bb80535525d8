"""One run's training, evaluation and export in a child process, so that a run that runs out of
memory fails alone and the worker that started it lives on.

The design, and why:
- The child is *spawned* (a fresh interpreter), not forked: a fork would copy the worker's database
  connections and the OpenMP/CUDA state of any torch it had touched, and neither survives a fork.
- The child imports no Django. It gets plain inputs (`Job`: the recipe as a dict, the packed
  faces' path with the rows to take, where to write), trains with `trainer.train`, exports and
  checks the ONNX file, and sends plain messages back over one pipe: `("event", {...})` for each
  progress event, then one of `("done", {...})`, `("failed", code, message)` or `("cancelled",)`.
- The parent (the Celery worker) keeps every database and Channels write: it hands each event to
  its `on_event` (the run's ProgressRecorder, unchanged), polls `should_stop` (the cancel flag) and
  sets a shared Event the child's trainer polls, and calls `on_tick` (a heartbeat) while it waits.
- The parent watches the child's resident memory and kills it past `memory_cap_bytes`; a child
  the kernel's OOM killer takes (SIGKILL) reads the same: `out_of_memory`. Either way the worker
  survives, and the run fails with that code instead of taking the worker down.
- The child dies with its parent (PR_SET_PDEATHSIG), so a killed worker leaves no orphan training,
  and ignores SIGINT and SIGTERM, so stopping the worker's process group stops the run the way it
  stopped before (left `running`, resumed by the next worker) rather than failing it.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field

import numpy as np

POLL_S = 0.2  # how often the parent reads events, the cancel flag and the child's memory
TICK_S = 30.0  # how often on_tick runs while the child is busy (evaluation and export send no events)
OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory", "not enough memory")


@dataclass
class Job:
    """Everything the child needs, as plain data (it is pickled to a fresh interpreter)."""

    config: dict
    pixels_path: str  # the dataset's packed uint8 [N, 48, 48] array (.npy)
    rows: np.ndarray  # which of its faces, in order (int64)
    labels: np.ndarray  # int64, one per row
    splits: np.ndarray  # str, one per row
    workdir: str
    onnx_path: str  # where the exported model goes
    version: str  # fer.version of the exported model
    check_faces: int = 16  # held-out faces the ONNX parity check runs on
    export: bool = True  # False: train and evaluate only (a cross-validation fold); no ONNX file, "export" None


@dataclass
class Outcome:
    status: str  # succeeded, failed or cancelled
    code: str = ""
    message: str = ""
    result: dict = field(default_factory=dict)
    peak_rss_bytes: int = 0


# ---------------------------------------------------------------- parent side


def run_isolated(job: Job, *, on_event, should_stop, memory_cap_bytes: int, on_tick=None) -> Outcome:
    """Start the child, relay its events, stop it on cancel, kill it past the memory cap."""
    import psutil

    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    stop = context.Event()
    child = context.Process(target=_child_main, args=(job, send, stop), name="ferweb-train", daemon=True)
    child.start()
    send.close()  # the child holds the only writing end: reading then ends when it exits
    try:
        watched = psutil.Process(child.pid)
    except psutil.Error:
        watched = None
    peak, last_tick, outcome = 0, time.monotonic(), None
    try:
        while outcome is None:
            message = _receive(receive)
            if message is None:
                pass  # nothing for POLL_S: look at memory, cancel and heartbeat below
            elif message[0] == "event":
                on_event(message[1])
            elif message[0] == "eof":
                child.join(10)  # every message was read: the child is exiting or gone
                outcome = _died(child.exitcode)
                break
            else:
                outcome = _final(message)
                break
            rss = _rss(watched)
            peak = max(peak, rss)
            if memory_cap_bytes and rss > memory_cap_bytes:
                child.kill()
                outcome = Outcome("failed", "out_of_memory", "over the memory cap")
                break
            if should_stop():
                stop.set()
            if on_tick and time.monotonic() - last_tick >= TICK_S:
                last_tick = time.monotonic()
                on_tick()
    finally:
        if outcome is None:
            child.kill()  # the parent failed (an error in on_event): the run ends here
        child.join(10)
        if child.is_alive():
            child.kill()
            child.join()
        receive.close()
    outcome.peak_rss_bytes = peak
    return outcome


def _receive(connection):
    """The next message; None after POLL_S without one; ("eof",) once the child closed its end."""
    try:
        if connection.poll(POLL_S):
            return connection.recv()
    except (EOFError, OSError):
        return ("eof",)
    return None


def _final(message: tuple) -> Outcome:
    kind = message[0]
    if kind == "done":
        return Outcome("succeeded", result=message[1])
    if kind == "cancelled":
        return Outcome("cancelled", "cancelled", "Cancelled while training.")
    return Outcome("failed", message[1], message[2])


def _died(exitcode: int | None) -> Outcome:
    if exitcode == -signal.SIGKILL:
        # Nobody else sends SIGKILL to a training child: the kernel ran out of memory.
        return Outcome("failed", "out_of_memory", "killed by the kernel for lack of memory")
    how = f"was killed by signal {-exitcode}" if exitcode and exitcode < 0 else f"exited with code {exitcode}"
    return Outcome("failed", "internal_error", f"The training process {how} before it finished.")


def _rss(process) -> int:
    import psutil

    if process is None:
        return 0
    try:
        return process.memory_info().rss + sum(c.memory_info().rss for c in process.children(recursive=True))
    except psutil.Error:
        return 0


# ---------------------------------------------------------------- child side


def _child_main(job: Job, connection, stop) -> None:
    # Stopping is the worker's call: a Ctrl-C or a SIGTERM sent to its whole process group (as
    # `make run` stops) must not end the run as failed. The worker finishes or kills the child;
    # a run left `running` by a stopped worker is resumed by the next one.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _die_with_parent()
    _first_for_the_oom_killer()
    parent = multiprocessing.parent_process().pid

    def send(*message):
        connection.send(message)

    def should_stop() -> bool:
        return stop.is_set() or os.getppid() != parent

    try:
        send("done", run_job(job, on_event=lambda event: send("event", event), should_stop=should_stop))
    except BaseException as exc:  # noqa: BLE001 - every ending is reported to the parent
        code, message = classify(exc)
        if code == "internal_error":
            traceback.print_exc(file=sys.stderr)
        try:
            send("cancelled") if code == "cancelled" else send("failed", code, message)
        except (BrokenPipeError, OSError):
            pass  # the parent is gone; so are we in a moment
    finally:
        connection.close()


def _die_with_parent() -> None:
    """Linux: the kernel sends this process SIGKILL when the worker that started it dies."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # elsewhere, should_stop notices the new parent within a batch


def _first_for_the_oom_killer() -> None:
    """Linux: should the machine run out of memory anyway, the kernel kills this process (the run)
    before the worker, the web server or Redis. Raising one's own score needs no privilege."""
    try:
        with open("/proc/self/oom_score_adj", "w") as handle:
            handle.write("500")
    except OSError:
        pass


def classify(exc: BaseException) -> tuple[str, str]:
    """An exception of the child -> (code, message for a person)."""
    from training_jobs.ml.config import ConfigError
    from training_jobs.ml.data import DataError

    name = type(exc).__name__
    if name == "TrainingCancelled":
        return "cancelled", "Cancelled while training."
    if isinstance(exc, MemoryError) or name == "OutOfMemoryError" or any(t in str(exc).lower() for t in OOM_TEXT):
        return "out_of_memory", str(exc)[:300]
    if isinstance(exc, ConfigError):
        return "invalid_config", str(exc)
    if isinstance(exc, DataError):
        return "invalid_data", str(exc)
    if name == "ExportError":
        return "onnx_parity", f"The exported model was not recorded: {exc}"
    return "internal_error", f"{name}: {str(exc)[:500]}"


def load_faces(job: Job):
    """The job's TrainData, read from the packed array (only the rows it names)."""
    from training_jobs.ml.data import TrainData

    packed = np.load(job.pixels_path, mmap_mode="r")
    rows = np.asarray(job.rows, dtype=np.int64)
    if len(rows) == len(packed) and (len(rows) == 0 or rows[-1] == len(rows) - 1):
        pixels = np.array(packed)  # every face, in order: one sequential read
    else:
        pixels = np.ascontiguousarray(packed[rows])
    return TrainData(pixels=pixels, labels=job.labels, splits=job.splits)


def run_job(job: Job, *, on_event, should_stop) -> dict:
    """1. validate the recipe; 2. read the faces; 3. train (resuming from workdir/last.pt);
    4. export the best weights to ONNX and prove parity on held-out faces; 5. measure latency
    (4 and 5 only with `job.export`). Returns plain data: what the parent stores on the run and its
    model version, with the evaluated faces one by one (TrainResult.evaluation)."""
    from fercore.preprocess import to_model_input
    from training_jobs.ml import trainer
    from training_jobs.ml.config import TrainConfig
    from training_jobs.ml.data import split_data
    from training_jobs.ml.export import export_onnx, onnx_latency_ms
    from training_jobs.ml.metrics import summary

    config = TrainConfig.from_dict(job.config)
    data = load_faces(job)
    result = trainer.train(config, data, workdir=job.workdir, on_event=on_event, should_stop=should_stop,
                           resume=True)
    metrics = dict(result.metrics)
    metrics.update(temperature=result.temperature, stopped_early=result.stopped_early, notes=result.notes,
                   device=result.device, resumed_from_epoch=result.resumed_from_epoch)
    outcome = {
        "history": result.history, "param_count": result.param_count, "wall_time_s": result.wall_time_s,
        "best_epoch": result.best_epoch, "best_val_accuracy": result.best_val_accuracy, "metrics": metrics,
        "occlusion": result.occlusion,
        "evaluation": result.evaluation,  # rows are positions in job.rows; the parent maps them to its items
        "export": None,
    }
    if not job.export:
        return outcome
    on_event({"type": "run.status", "phase": "exporting", "message": "exporting to ONNX"})
    held_out = split_data(data, validation_fraction=config.validation_fraction, seed=config.seed).test
    check = to_model_input(data.pixels[held_out[:job.check_faces]])
    small = {k: v for k, v in summary(metrics).items() if k not in ("occlusion", "notes")}
    report = export_onnx(result.model, job.onnx_path, architecture=config.architecture, version=job.version,
                         metrics=small, temperature=result.temperature, tta_flip=config.tta_flip,
                         check_batch=check if len(check) else None)
    outcome["export"] = {"metrics": small, "max_abs_diff": report.max_abs_diff,
                         "latency_ms": onnx_latency_ms(report.path)}
    return outcome
