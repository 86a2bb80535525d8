"""Shared fixtures: named users, API clients, a real Celery worker, a real ASGI server.

Roles, as in every test here: alice owns things, bob is another user who must see
nothing of hers, carol is staff and sees everything.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct-horse-battery-staple"


@pytest.fixture
def model_file(tmp_path, settings):
    """A small random model that follows the model contract, serving as the site default."""
    from inference.synthetic import contract_model

    path = contract_model(tmp_path / "models" / "default.onnx", seed=1, version="test-default")
    settings.FERWEB_DEFAULT_MODEL = path
    return path


@pytest.fixture
def served_model(model_file, monkeypatch):
    """The contract model for server and worker processes started by the test (they read the environment)."""
    monkeypatch.setenv("FERWEB_DEFAULT_MODEL", str(model_file))
    return model_file


@pytest.fixture(autouse=True)
def _media_root(tmp_path, settings):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.MEDIA_ROOT.mkdir()


def make_user(username, **extra):
    return get_user_model().objects.create_user(username=username, password=PASSWORD, **extra)


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def carol(db):
    return make_user("carol", is_staff=True, is_superuser=True)


def api_client_for(user):
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def alice_api(alice):
    return api_client_for(alice)


@pytest.fixture
def bob_api(bob):
    return api_client_for(bob)


@pytest.fixture
def carol_api(carol):
    return api_client_for(carol)


@pytest.fixture
def anon_api():
    return APIClient()


def database_url() -> str:
    """The URL of the test database, for processes started outside pytest."""
    db = settings.DATABASES["default"]
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    auth = f"{user}:{db['PASSWORD']}@" if db.get("PASSWORD") else (f"{user}@" if user else "")
    return f"postgres://{auth}{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


def subprocess_env(media_root: Path) -> dict:
    env = dict(os.environ)
    env.update(
        DATABASE_URL=database_url(),
        MEDIA_ROOT=str(media_root),
        REDIS_URL=settings.REDIS_URL,
        DJANGO_SETTINGS_MODULE="ferweb.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def celery_worker(transactional_db, settings):
    """A real Celery worker in this process, consuming every queue from the real Redis."""
    from celery.contrib.testing.worker import start_worker

    from ferweb.celery import app

    app.control.purge()
    with start_worker(
        app, queues=["training", "inference"], pool="solo", perform_ping_check=False, shutdown_timeout=30
    ) as worker:
        yield worker


class WorkerProcess:
    """A Celery worker in its own process, so a test can kill it like a crash would."""

    def __init__(self, env, queues, log_path, name):
        self.env, self.queues, self.log_path, self.name = env, queues, log_path, name
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "ferweb", "worker", "-Q", ",".join(self.queues),
             "-c", "1", "--pool", "solo", "-l", "INFO", "-n", self.name],
            cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        return self

    def kill(self):
        """SIGKILL the whole worker: no cleanup code gets to run."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if self.proc:
            self.log.close()

    def output(self) -> str:
        return Path(self.log_path).read_text(errors="replace")


@pytest.fixture
def worker_process(transactional_db, settings, tmp_path):
    """Factory for worker processes; every one started is stopped at the end."""
    from ferweb.celery import app

    app.control.purge()
    started = []

    def start(queues=("training", "inference"), name=None):
        """A restarted worker keeps its name when given the same one, as `make run`'s workers do."""
        name = name or f"test-{os.getpid()}-{time.time_ns()}@localhost"
        worker = WorkerProcess(subprocess_env(settings.MEDIA_ROOT), queues, tmp_path / f"worker{len(started)}.log", name)
        started.append(worker.start())
        return worker

    yield start
    for worker in started:
        worker.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, proc, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listens on {port} after {timeout}s")


@pytest.fixture
def live_asgi(transactional_db, settings, tmp_path, worker_process):
    """The web server (as `make run` starts it, two processes) plus a worker, all on the test database."""
    port = free_port()
    env = subprocess_env(settings.MEDIA_ROOT)
    log = open(tmp_path / "web.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ferweb.serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    worker = worker_process()
    try:
        wait_for_port(port, proc)
        yield type("LiveServer", (), {"url": f"http://127.0.0.1:{port}", "worker": worker, "log": tmp_path / "web.log"})
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()


CHROMIUM = os.environ.get("FERWEB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture
def browser_factory():
    """Launch the system Chromium headless through Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium package")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        browsers = []

        def launch(extra_args=()):
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args]
            )
            browsers.append(browser)
            return browser

        yield launch
        for browser in browsers:
            browser.close()


@pytest.fixture
def page(browser_factory):
    browser = browser_factory()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    yield page
    context.close()
    # ORM calls made while Playwright's loop runs open connections teardown would not close.
    from django.db import connections

    connections.close_all()


def signup(page, base_url, username="dora"):
    """Sign up through the real form; leaves the page logged in."""
    page.goto(f"{base_url}/accounts/signup/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password1]", PASSWORD)
    page.fill("input[name=password2]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base_url}/datasets/**")
