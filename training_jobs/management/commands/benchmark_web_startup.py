"""`python manage.py benchmark_web_startup [--repeats N]`: what one web process costs at start.

For each repeat:
1. start `python -m ferweb.serve --workers 1` on a free port, with this command's environment (so
   the same database and settings), and time until the port answers;
2. read the process's resident memory (RSS) once it has served nothing;
3. GET /runs/new/ as a logged-in user (a session made here for a throwaway user) and time that
   first request, then a second one;
4. read the RSS again, and whether the process has PyTorch's library mapped;
5. stop the server.
Prints each repeat, the medians and the CPU. The web process should never load PyTorch.
"""
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

import psutil
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.test import Client

USERNAME = "benchmark-web-startup"
PAGE = "/runs/new/"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CommandError(f"the web server exited with {proc.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.02)
    raise CommandError(f"nothing listens on port {port} after {timeout:.0f} s")


def get(url: str, cookie: str) -> tuple[int, float]:
    """(status, seconds) of one GET."""
    request = urllib.request.Request(url, headers={"Cookie": cookie})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=120) as response:
        response.read()
        if response.url != url:
            raise CommandError(f"GET {url} was redirected to {response.url}: is the session valid?")
        status = response.status
    return status, time.perf_counter() - started


def rss_mb(process: psutil.Process) -> float:
    return process.memory_info().rss / 1e6


def has_torch(process: psutil.Process) -> bool:
    """Whether libtorch is mapped into the process: importing torch maps it, nothing else does."""
    return any("libtorch" in os.path.basename(m.path) for m in process.memory_maps(grouped=True))


class Command(BaseCommand):
    help = "Start one web process, then print its memory and the time of its first /runs/new/ (PyTorch loaded or not)."

    def add_arguments(self, parser):
        parser.add_argument("--repeats", type=int, default=3, help="fresh servers to measure (default 3)")
        parser.add_argument("--settle", type=float, default=1.0,
                            help="seconds to wait after the port opens before reading the RSS (default 1)")

    def handle(self, *args, **options):
        user, _ = get_user_model().objects.get_or_create(username=USERNAME)
        client = Client()
        client.force_login(user)
        cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}"
        rows = []
        try:
            for repeat in range(options["repeats"]):
                rows.append(self.measure(cookie, options["settle"]))
                row = rows[-1]
                self.stdout.write(
                    f"repeat {repeat + 1}: port open after {row['start_s']:.2f} s; RSS {row['rss_start_mb']:.0f} MB; "
                    f"first GET {PAGE} {row['first_s']:.3f} s (HTTP {row['status']}), second {row['second_s']:.3f} s; "
                    f"RSS then {row['rss_after_mb']:.0f} MB; PyTorch loaded: {'yes' if row['torch'] else 'no'}")
        finally:
            client.logout()
            user.delete()

        def median(key):
            return statistics.median(row[key] for row in rows)

        self.stdout.write("")
        self.stdout.write(f"CPU: {cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}; "
                          f"load average {os.getloadavg()[0]:.1f}")
        self.stdout.write(f"median of {len(rows)}, one `python -m ferweb.serve --workers 1` process:")
        for label, value in (
            ("start until the port answers", f"{median('start_s'):.2f} s"),
            ("RSS after start", f"{median('rss_start_mb'):.0f} MB"),
            (f"first GET {PAGE} (logged in)", f"{median('first_s'):.3f} s"),
            (f"second GET {PAGE}", f"{median('second_s'):.3f} s"),
            ("RSS after the first page", f"{median('rss_after_mb'):.0f} MB"),
            ("PyTorch loaded", "yes" if any(row["torch"] for row in rows) else "no"),
        ):
            self.stdout.write(f"  {label:<34}{value}")

    def measure(self, cookie: str, settle: float) -> dict:
        port = free_port()
        log = tempfile.TemporaryFile()
        started = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "ferweb.serve", "--port", str(port), "--workers", "1"],
            cwd=settings.BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            wait_for_port(port, proc, timeout=120)
            row = {"start_s": time.perf_counter() - started}
            time.sleep(settle)
            server = psutil.Process(proc.pid)
            row["rss_start_mb"] = rss_mb(server)
            row["status"], row["first_s"] = get(f"http://127.0.0.1:{port}{PAGE}", cookie)
            _, row["second_s"] = get(f"http://127.0.0.1:{port}{PAGE}", cookie)
            row["rss_after_mb"] = rss_mb(server)
            row["torch"] = has_torch(server)
            if row["status"] != 200:
                raise CommandError(f"GET {PAGE} answered {row['status']}")
            return row
        except Exception:
            log.seek(0)
            self.stderr.write(log.read().decode(errors="replace")[-4000:])
            raise
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
            log.close()
