"""Serving benchmark: classifier latency and throughput, the webcam pipeline, two live webcam
clients, REST latency with one and four clients, the same while a 500 MB upload is in flight,
the web processes' memory during that upload, and how fast an over-limit upload is refused, all
against a web server this command starts on 127.0.0.1.

    python manage.py benchmark_inference [--model PATH] [--seconds 10] [--requests 400] [--servers ferweb,daphne]

`--servers` measures the live part once per server in the same run: `ferweb` is the web tier as
`make run` starts it (`python -m ferweb.serve`); `daphne` (single process, when installed) is the
server FERWeb used before, kept as the baseline for a ratio measured on the same machine and load;
`granian` (when installed) is the other multi-process server that was measured.

Uses --model, else settings.FERWEB_DEFAULT_MODEL, else a small random model that follows the
model contract (and says so). Creates a throwaway user for the live part and deletes it after.
"""
import asyncio
import base64
import http.client
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import psutil
from django.conf import settings
from django.core.management.base import BaseCommand

from inference.engine import Engine, ModelCache
from inference.synthetic import FER_ZIP, clutter, contract_model, draw_face, fer_faces, jpeg, place, upscale
from inference.wsclient import WebSocketClient


def pct(values, q):
    return float(np.percentile(np.asarray(values), q))


SERVERS = {
    "ferweb": lambda port: [sys.executable, "-m", "ferweb.serve", "--port", str(port)],
    "daphne": lambda port: [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "ferweb.asgi:application"],
    # The alternative measured when choosing the server (not a dependency: `pip install granian`).
    "granian": lambda port: [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
                             "--port", str(port), "--workers", str((os.cpu_count() or 1) + 1), "ferweb.asgi:application"],
}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            flags = Path("/proc/cpuinfo").read_text()
            isa = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
            return f"{line.split(':', 1)[1].strip()} ({isa})"
    return "unknown CPU"


def stats(load: dict) -> str:
    return f"p50 {load['p50']:.1f} ms, p95 {load['p95']:.1f} ms ({load['n']} requests, {load['errors']} errors)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def one_face_frame() -> tuple[bytes, str]:
    """A 640x480 JPEG with one face the detector finds: FER2013 when the zip is here, else drawn."""
    from fercore.faces import FaceDetector

    detector = FaceDetector(backend=settings.FERWEB_FACE_DETECTOR)
    if FER_ZIP.exists():
        for _, face in fer_faces(40, seed=7):
            frame = clutter(seed=1)
            place(frame, upscale(face, 200), 220, 140)
            if len(detector.detect(frame)) == 1:
                return jpeg(frame, 80), "FER2013 face, 200 px"
    frame = clutter(seed=1)
    place(frame, draw_face(200, seed=1), 220, 140)
    return jpeg(frame, 80), "drawn face, 200 px"


class Command(BaseCommand):
    help = "Measure classification, the webcam pipeline, live webcam clients and the predict API."

    def add_arguments(self, parser):
        parser.add_argument("--model", default=None)
        parser.add_argument("--seconds", type=float, default=10.0, help="Duration of the two-client webcam run.")
        parser.add_argument("--requests", type=int, default=400, help="REST requests, split over 4 clients.")
        parser.add_argument("--skip-live", action="store_true", help="Only the in-process measurements.")
        parser.add_argument("--skip-celery", action="store_true", help="Skip the Celery round-trip comparison.")
        parser.add_argument("--servers", default="ferweb",
                            help="Comma-separated web servers for the live part: ferweb (make run's), daphne (baseline).")

    def handle(self, *args, **opts):
        rows = []
        self.stdout.write(f"CPU: {cpu_name()}, {os.cpu_count()} cores")
        model_path, model_note = self.pick_model(opts["model"])
        self.stdout.write(f"model: {model_path} ({model_note})")
        rows += self.classification(model_path)
        frame, frame_note = one_face_frame()
        self.stdout.write(f"frame: 640x480 JPEG, {len(frame):,} bytes, {frame_note}")
        rows += self.webcam_pipeline(model_path, frame)
        if not opts["skip_celery"]:
            rows += self.celery_round_trip(model_path, frame)
        if not opts["skip_live"]:
            for server in opts["servers"].split(","):
                live = self.live(model_path, frame, opts["seconds"], opts["requests"], server)
                rows += [(f"[{server}] {name}", value, goal) for name, value, goal in live]
        width = max(len(r[0]) for r in rows)
        self.stdout.write(f"\nload average during the run: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")
        self.stdout.write("| measurement | result | goal |\n| --- | --- | --- |")
        for name, value, goal in rows:
            self.stdout.write(f"| {name:{width}} | {value} | {goal} |")

    def pick_model(self, given):
        if given:
            return Path(given), "given"
        default = Path(settings.FERWEB_DEFAULT_MODEL)
        if default.exists():
            return default, "the default model"
        path = Path(tempfile.mkdtemp()) / "contract.onnx"
        return contract_model(path, version="benchmark"), "no default model found: a random contract-shaped MLP"

    def classification(self, model_path):
        # What the engine would serve: the INT8 variant when present and preferred.
        model = ModelCache(threads=2, prefer_int8=settings.FERWEB_PREFER_INT8).get(model_path)
        self.stdout.write(f"serving file: {model.path}")
        rng = np.random.default_rng(0)
        one = rng.random((1, 1, 48, 48), dtype=np.float32)
        for _ in range(50):
            model.logits(one)
        times = []
        for _ in range(2000):
            t0 = time.perf_counter()
            model.logits(one)
            times.append((time.perf_counter() - t0) * 1000)
        batch = rng.random((256, 1, 48, 48), dtype=np.float32)
        model.logits(batch)
        t0 = time.perf_counter()
        runs = 20
        for _ in range(runs):
            model.logits(batch)
        rate = runs * 256 / (time.perf_counter() - t0)
        return [
            ("classify 1 face, batch 1, 2 threads (median)", f"{statistics.median(times):.3f} ms", "< 1 ms"),
            ("classify batched (256 per call, 2 threads)", f"{rate:,.0f} faces/s", "> 3,000 faces/s"),
        ]

    def webcam_pipeline(self, model_path, frame):
        """The consumer's work for one frame, in process: decode, detect, classify, JSON reply."""
        from fercore.images import decode_image

        engine = Engine(threads=settings.FERWEB_INFERENCE_THREADS, min_face_size=settings.FERWEB_MIN_FACE_SIZE,
                        batcher=False, detector=settings.FERWEB_FACE_DETECTOR, prefer_int8=settings.FERWEB_PREFER_INT8)
        totals, parts = [], {"decode": [], "detect": [], "classify": [], "reply": []}
        for i in range(330):
            t0 = time.perf_counter()
            image = decode_image(frame, max_pixels=settings.FERWEB_MAX_IMAGE_PIXELS)
            t1 = time.perf_counter()
            prediction = engine.predict_image(image, model_path, decode_ms=(t1 - t0) * 1000)
            t2 = time.perf_counter()
            json.dumps({"type": "prediction", "faces": prediction.faces, "timing_ms": prediction.timing_ms})
            t3 = time.perf_counter()
            if i >= 30:
                totals.append((t3 - t0) * 1000)
                for key in ("decode", "detect", "classify"):
                    parts[key].append(prediction.timing_ms[key])
                parts["reply"].append((t3 - t2) * 1000)
        assert len(prediction.faces) == 1, "the benchmark frame should hold exactly one detected face"
        detail = ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in parts.items())
        return [(f"webcam pipeline, 640x480 JPEG, 1 face, {engine.detector.backend} (median)",
                 f"{statistics.median(totals):.2f} ms ({detail})", "< 10 ms")]

    def celery_round_trip(self, model_path, frame):
        """The alternative for webcam frames: a Celery task that answers over the channel layer."""
        from asgiref.sync import async_to_sync
        from channels.layers import get_channel_layer

        from inference.tasks import predict_frame

        queue = f"bench-{uuid.uuid4().hex[:8]}"
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "ferweb", "worker", "-Q", queue, "-c", "1", "--pool", "solo",
             "-l", "WARNING", "-n", f"{queue}@localhost"],
            cwd=settings.BASE_DIR, env={**os.environ, "FERWEB_DEFAULT_MODEL": str(model_path)},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        layer = get_channel_layer()
        payload = base64.b64encode(frame).decode()
        try:
            channel = async_to_sync(layer.new_channel)()
            times = []
            for i in range(130):
                t0 = time.perf_counter()
                predict_frame.apply_async((payload, str(model_path), channel), queue=queue)
                async_to_sync(layer.receive)(channel)  # the first call waits for the worker to start
                if i >= 30:
                    times.append((time.perf_counter() - t0) * 1000)
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            worker.wait(30)
        return [("same frame through Celery + channel layer (median)", f"{statistics.median(times):.2f} ms",
                 "comparison: in-process wins")]

    def live(self, model_path, frame, seconds, requests, server):
        from django.contrib.auth import get_user_model
        from django.contrib.sessions.backends.db import SessionStore
        from rest_framework.authtoken.models import Token

        User = get_user_model()
        user = User.objects.create_user(username=f"benchmark-{uuid.uuid4().hex[:8]}")
        token = Token.objects.create(user=user).key
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        port = free_port()
        env = {**os.environ, "FERWEB_DEFAULT_MODEL": str(model_path)}
        log_path = Path(tempfile.mkdtemp()) / "web.log"
        log = open(log_path, "wb")
        process = subprocess.Popen(
            SERVERS[server](port), cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self.wait_for(port)
            cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
            single = self.rest_load(port, token, frame, requests // 4, clients=1)  # also warms the server's engine
            rest = self.rest_load(port, token, frame, requests)
            floor_single = self.rest_load(port, token, None, requests // 4, clients=1, path="/api/jobs/")
            floor = self.rest_load(port, token, None, requests, path="/api/jobs/")
            webcam = asyncio.run(self.two_clients(port, cookie, frame, seconds))
            upload = self.during_upload(port, token, frame, process.pid)
            refused = self.refusal_time(port, token, settings.FERWEB_MAX_UPLOAD_BYTES + 8 * 1024 * 1024)
        except Exception:
            self.stderr.write(f"server log {log_path}:\n" + log_path.read_text(errors="replace")[-3000:])
            raise
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
            log.close()
            user.delete()
        fps = ", ".join(f"{f:.1f}" for f, _ in webcam)
        latency = ", ".join(f"{lat:.1f}" for _, lat in webcam)
        return [
            ("2 webcam clients at once over websockets (fps each)", f"{fps} fps (round trip median {latency} ms)", ">= 15 fps each"),
            ("POST /api/predict/, 1 client", stats(single), "baseline"),
            ("POST /api/predict/, 4 concurrent clients", stats(rest), "p95 <= 50 ms"),
            ("GET /api/jobs/ (no inference), 1 client", stats(floor_single), "baseline"),
            ("GET /api/jobs/ (no inference), 4 concurrent clients", stats(floor), "p95 <= 15 ms"),
            (f"GET /api/jobs/, 4 clients, during a {upload['mb']} MB upload", stats(upload["get"]),
             f"p95 <= 2 x {floor['p95']:.1f} ms"),
            (f"POST /api/predict/, 4 clients, during a {upload['mb']} MB upload", stats(upload["predict"]),
             f"p95 <= 2 x {rest['p95']:.1f} ms"),
            (f"web processes' memory growth during the {upload['mb']} MB upload",
             f"{upload['growth_mb']:.0f} MB (upload took {upload['seconds']:.1f} s, answered {upload['status']})",
             "< 50 MB"),
            (f"a {refused['mb']} MB upload over the limit: time to the 413",
             f"{refused['seconds'] * 1000:.0f} ms (status {refused['status']}, {refused['sent_mb']:.1f} MB sent by then)",
             "< 1 s"),
        ]

    def during_upload(self, port, token, frame, server_pid, megabytes=500, rate_mb_s=50):
        """GET, then predict load from 4 clients, each while one client uploads `megabytes` at `rate_mb_s`."""
        tree = psutil.Process(server_pid)

        def web_rss():
            rss = 0
            for process in [tree, *tree.children(recursive=True)]:
                try:
                    rss += process.memory_info().rss
                except psutil.NoSuchProcess:
                    pass
            return rss

        def sample_peak(uploader):
            while uploader.is_alive():
                peak[0] = max(peak[0], web_rss())
                time.sleep(0.05)

        before, peak, out = web_rss(), [0], {"mb": megabytes}
        for name, body, path in (("get", None, "/api/jobs/"), ("predict", frame, "/api/predict/")):
            uploader = threading.Thread(target=lambda: out.update(self.slow_upload(port, token, megabytes, rate_mb_s)))
            uploader.start()
            sampler = threading.Thread(target=sample_peak, args=(uploader,))
            sampler.start()
            out[name] = self.rest_load(port, token, body, 0, path=path, until=lambda: not uploader.is_alive())
            uploader.join()
            sampler.join()
        out["growth_mb"] = (peak[0] - before) / 1e6
        return out

    @staticmethod
    def slow_upload(port, token, megabytes, rate_mb_s):
        """A multipart dataset upload sent at a bounded rate, as a real client on a fast link would."""
        boundary = uuid.uuid4().hex
        head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.zip\"\r\n"
                "Content-Type: application/zip\r\n\r\n").encode()
        tail = f"\r\n--{boundary}--\r\n".encode()
        size = megabytes * 1024 * 1024
        chunk = b"\0" * (1024 * 1024)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        conn.putrequest("POST", "/api/datasets/")
        conn.putheader("Authorization", f"Token {token}")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(len(head) + size + len(tail)))
        conn.endheaders()
        t0 = time.perf_counter()
        conn.send(head)
        for i in range(megabytes):
            conn.send(chunk)
            time.sleep(max(0.0, t0 + (i + 1) / rate_mb_s - time.perf_counter()))
        conn.send(tail)
        response = conn.getresponse()
        response.read()
        conn.close()
        return {"seconds": time.perf_counter() - t0, "status": response.status}

    @staticmethod
    def refusal_time(port, token, size):
        """Send an over-limit upload as fast as the socket takes it, reading at the same time (as curl does)."""
        sock = socket.create_connection(("127.0.0.1", port))
        sock.sendall((f"POST /api/datasets/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
                      f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {size}\r\n\r\n").encode())
        t0, sent, reply, chunk = time.perf_counter(), 0, b"", b"\0" * 65536
        sock.setblocking(False)
        while b"\r\n" not in reply and time.perf_counter() - t0 < 120:
            readable, writable, _ = select.select([sock], [sock] if sent < size else [], [], 1)
            if readable:
                data = sock.recv(4096)
                if not data:
                    break
                reply += data
            elif writable:
                try:
                    sent += sock.send(chunk)
                except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                    pass
        elapsed = time.perf_counter() - t0
        sock.close()
        status = reply.split(b" ", 2)[1].decode() if reply.startswith(b"HTTP/") else "none"
        return {"seconds": elapsed, "status": status, "sent_mb": sent / 1e6, "mb": round(size / 1024**2)}

    @staticmethod
    def wait_for(port, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.2)
        raise TimeoutError("the benchmark server did not start")

    @staticmethod
    def rest_load(port, token, frame, requests, clients=4, path="/api/predict/", until=None):
        """`clients` keep-alive connections in threads; frame=None sends a GET (the server's own floor).

        With `until`, the measured round goes on until it returns True instead of `requests` requests.
        """
        boundary = uuid.uuid4().hex
        headers = {"Authorization": f"Token {token}"}
        method, body = "GET", None
        if frame is not None:
            method = "POST"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"face.jpg\"\r\n"
                    f"Content-Type: image/jpeg\r\n\r\n").encode() + frame + f"\r\n--{boundary}--\r\n".encode()
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
        latencies, errors, lock = [], [0], threading.Lock()

        def client(count, record):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            done = 0
            while (done < count) if until is None or not record else not until():
                done += 1
                t0 = time.perf_counter()
                conn.request(method, path, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                elapsed = (time.perf_counter() - t0) * 1000
                if record:
                    with lock:
                        latencies.append(elapsed)
                        errors[0] += response.status != 200
            conn.close()

        for record, count in ((False, 10), (True, requests // clients)):  # warm-up round, then the measured one
            threads = [threading.Thread(target=client, args=(count, record)) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if not latencies:
            return {"n": 0, "p50": float("nan"), "p95": float("nan"), "errors": errors[0]}
        return {"n": len(latencies), "p50": pct(latencies, 50), "p95": pct(latencies, 95), "errors": errors[0]}

    @staticmethod
    async def two_clients(port, cookie, frame, seconds):
        async def client():
            ws = await WebSocketClient.connect("127.0.0.1", port, "/ws/webcam/", {"Cookie": cookie})
            await ws.recv()  # ready
            for _ in range(10):  # warm-up
                await ws.send(frame)
                await ws.recv()
            done, trips = 0, []
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                t0 = time.perf_counter()
                await ws.send(frame)
                reply = json.loads(await ws.recv())
                trips.append((time.perf_counter() - t0) * 1000)
                done += reply.get("type") == "prediction"
            await ws.close()
            return done / (time.perf_counter() - start), statistics.median(trips)

        return await asyncio.gather(client(), client())
