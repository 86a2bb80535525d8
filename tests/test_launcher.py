"""`python -m ferweb.launcher run` keeps the site up: every process it starts is restarted when killed."""
import io
import json
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import zipfile

import numpy as np
import psutil
import pytest
from PIL import Image

from ferweb import launcher
from tests.conftest import ROOT, free_port

PASSWORD = "correct-horse-battery-staple"


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"{what} within {timeout} s")


class Site:
    """The launcher under test: its process, its log, and HTTP calls to the site it serves."""

    def __init__(self, tmp_path):
        self.data_dir = tmp_path / "data"
        self.port = free_port()
        self.redis_url = f"redis://127.0.0.1:{free_port()}/0"
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / "launcher.log"
        self.seen: dict[int, psutil.Process] = {}
        self.proc = None
        self.token = None

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "FERWEB_CELERY_EAGER")}
        env.update(
            FERWEB_DATA_DIR=str(self.data_dir),
            MEDIA_ROOT=str(self.data_dir / "media"),
            PORT=str(self.port),
            REDIS_URL=self.redis_url,  # nothing answers there: the launcher starts a Redis of its own
            DATABASE_URL=f"sqlite:///{self.data_dir / 'ferweb.sqlite3'}",
            FERWEB_WEB_WORKERS="2",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, log):
        self.data_dir.mkdir()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "ferweb.launcher", "run"],
            cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the launcher exited with {self.proc.returncode}:\n{self.output()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{self.url}/accounts/login/", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def child(self, marker: str) -> psutil.Process:
        """The launcher's one child whose command line contains `marker`, once it runs."""

        def find():
            found = [p for p in psutil.Process(self.proc.pid).children() if marker in command_line(p)]
            return found[0] if len(found) == 1 else None

        process = wait_for(find, 30, f"one process with {marker!r} under the launcher")
        self.remember(process)
        return process

    def remember(self, process: psutil.Process) -> None:
        for each in [process, *process.children(recursive=True)]:
            self.seen.setdefault(each.pid, each)

    def kill_and_recover(self, name: str, marker: str) -> psutil.Process:
        """SIGKILL one process: the site answers within 10 s, the log says so, a new process takes over."""
        process = self.child(marker)
        process.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        # The log line comes once the launcher has cleared the dead process's group, so the answer
        # that follows comes from its successor, not from a leftover of the killed one.
        wait_for(lambda: f"{name} (pid {process.pid}) was killed by SIGKILL" in self.output(), 10,
                 f"the launcher logs how {name} died")
        wait_for(self.answers, 10 - (time.monotonic() - killed_at), f"the site answers again after {name} died")
        return wait_for(lambda: (p := self.child(marker)).pid != process.pid and p, 30, f"a new {name}")

    def api(self, method, path, body=None, content_type="application/json"):
        headers = {"Content-Type": content_type} if body is not None else {}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        if isinstance(body, dict):
            body = json.dumps(body).encode()
        request = urllib.request.Request(f"{self.url}{path}", data=body, method=method, headers=headers)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"null")

    def ping_workers(self) -> set[str]:
        """Names (before the @) of the Celery workers that answer a ping over the launcher's Redis."""
        ping = subprocess.run(
            [sys.executable, "-m", "celery", "-A", "ferweb", "inspect", "ping", "--json"],
            cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=30, check=False,
        )
        replies = json.loads(ping.stdout) if ping.returncode == 0 else {}
        return {name.split("@")[0] for name in replies}


def command_line(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except psutil.Error:  # gone, or a zombie
        return ""


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def faces_zip() -> bytes:
    """Two classes of three 48x48 grayscale PNGs each, as in the FER2013 download."""
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for label in ("happy", "sad"):
            for i in range(3):
                png = io.BytesIO()
                Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8), "L").save(png, "PNG")
                archive.writestr(f"{label}/{label}_{i}.png", png.getvalue())
    return buffer.getvalue()


def multipart(fields: dict, filename: str, data: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = b"".join(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in fields.items()
    )
    body += (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/zip\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


@pytest.fixture
def site(tmp_path):
    site = Site(tmp_path)
    with open(site.log_path, "ab") as log:
        site.start(log)
        try:
            yield site
        finally:
            if site.proc.poll() is None:
                os.killpg(site.proc.pid, signal.SIGKILL)
                site.proc.wait(10)
            for process in site.seen.values():
                if alive(process):
                    process.kill()
            print(site.output()[-5000:])  # pytest shows it when the test fails


@pytest.mark.worker
def test_every_process_it_starts_is_restarted_when_killed_and_the_site_stays_up(site):
    wait_for(site.answers, 120, "the site answers after the first start (migrations)")
    assert stat.S_IMODE((site.data_dir / "secret-key.txt").stat().st_mode) == 0o600

    # The web server's supervisor: its workers go with it, so the port is free for the next one.
    web = site.child("ferweb.serve")
    wait_for(lambda: len(web.children()) >= 2, 30, "uvicorn's worker processes")
    old_workers = web.children()
    web = site.kill_and_recover("web", "ferweb.serve")
    wait_for(lambda: not any(alive(p) for p in old_workers), 10, "the killed server's workers are gone")

    # One uvicorn worker: uvicorn's own supervisor replaces it, the launcher need not act.
    uvicorn_worker = wait_for(lambda: [p for p in web.children() if "spawn_main" in command_line(p)], 30,
                              "a uvicorn worker")[0]
    site.remember(web)
    uvicorn_worker.send_signal(signal.SIGKILL)
    wait_for(site.answers, 10, "the site answers after a uvicorn worker died")
    wait_for(lambda: f"Child process [{uvicorn_worker.pid}] died" in site.output(), 10, "uvicorn notes the death")
    assert site.child("ferweb.serve").pid == web.pid

    site.kill_and_recover("worker-train", "-Q training")
    site.kill_and_recover("worker-infer", "-Q inference")
    wait_for(lambda: site.ping_workers() >= {"train", "infer"}, 60, "both new workers answer a ping")

    # Redis goes while both workers hold connections to it: they must find the restarted one.
    site.kill_and_recover("redis", "redis-server")
    wait_for(lambda: site.ping_workers() >= {"train", "infer"}, 60, "both workers answer over the new Redis")

    # No job stays stuck: an import goes through the restarted Redis and inference worker.
    assert site.api("POST", "/api/auth/register/", {"username": "alice", "password": PASSWORD})[0] == 201
    site.token = site.api("POST", "/api/auth/token/", {"username": "alice", "password": PASSWORD})[1]["token"]
    body, content_type = multipart({"name": "after the kills"}, "faces.zip", faces_zip())
    status, dataset = site.api("POST", "/api/datasets/", body, content_type)
    assert status == 201
    finished = wait_for(
        lambda: (d := site.api("GET", f"/api/datasets/{dataset['id']}/")[1])["status"] != "importing" and d,
        60, "the import finishes",
    )
    assert finished["status"] == "ready", finished["error"]
    assert finished["class_counts"]["happy"] == 3 and finished["class_counts"]["sad"] == 3

    for marker in ("ferweb.serve", "-Q training", "-Q inference", "redis-server"):
        site.remember(site.child(marker))
    site.proc.send_signal(signal.SIGTERM)
    assert site.proc.wait(30) == 0
    leftovers = [p for p in site.seen.values() if alive(p)]
    assert not leftovers, [p.cmdline() for p in leftovers]
    assert "[ferweb] stopped" in site.output()


def test_a_death_names_the_exit_code_or_the_signal():
    oom = launcher.OomWatch()
    assert launcher.how_it_ended(3, 1, time.monotonic(), oom) == "exited with code 3"
    assert launcher.how_it_ended(-signal.SIGTERM, 1, time.monotonic(), oom) == "was killed by SIGTERM"


def test_a_sigkill_is_put_down_to_the_oom_killer_only_on_the_kernel_s_word(monkeypatch):
    oom = launcher.OomWatch()
    oom.files = []  # no cgroup counter: only the kernel log speaks
    monkeypatch.setattr(launcher, "kernel_log_names_oom_kill", lambda pid, since: False)
    assert launcher.how_it_ended(-signal.SIGKILL, 1, time.monotonic(), oom) == "was killed by SIGKILL"
    monkeypatch.setattr(launcher, "kernel_log_names_oom_kill", lambda pid, since: pid == 1)
    assert launcher.how_it_ended(-signal.SIGKILL, 1, time.monotonic(), oom) == (
        "was killed by SIGKILL (the kernel's OOM killer)"
    )


def test_a_process_that_keeps_dying_is_restarted_with_a_doubling_delay(capsys):
    service = launcher.Service("flaky", ["sh", "-c", "exit 3"])
    oom = launcher.OomWatch()
    service.start()
    output, deadline = "", time.monotonic() + 10
    while output.count("exited with code 3") < 3 and time.monotonic() < deadline:
        service.tend(oom)
        output += capsys.readouterr().out
        time.sleep(0.05)
    if service.proc:
        service.proc.wait()
    lines = [line for line in output.splitlines() if "exited with code 3" in line]
    assert [line.rsplit("restarting in ", 1)[1] for line in lines] == ["0.5 s", "1 s", "2 s"]


def test_the_secret_key_file_is_made_once_and_readable_by_its_owner_alone(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setattr(launcher, "DATA_DIR", tmp_path)
    launcher.ensure_secret_key()
    key = (tmp_path / "secret-key.txt").read_text()
    launcher.ensure_secret_key()
    assert (tmp_path / "secret-key.txt").read_text() == key and len(key) >= 50
    assert stat.S_IMODE((tmp_path / "secret-key.txt").stat().st_mode) == 0o600


def test_no_secret_key_file_when_the_environment_has_one(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    monkeypatch.setattr(launcher, "DATA_DIR", tmp_path)
    launcher.ensure_secret_key()
    assert not (tmp_path / "secret-key.txt").exists()
