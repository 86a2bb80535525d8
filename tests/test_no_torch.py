"""The web process and the inference worker run without PyTorch.

Only the training worker imports torch (DESIGN.md, Processes), so the slim image installs without
it. Here the web server and an inference worker start with `import torch` failing, as in that
image, and a logged-in user walks every page and API route of the URLconf, uploads a dataset that
the worker imports, creates and cancels a run, predicts, runs a batch job and a labeling set, and
streams a webcam frame. Every answer must be the expected one, and neither log may show a blocked
import. The blocker also prints the stack of any attempt, so a failure says which code tried.
"""
import asyncio
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import tomllib
import urllib.error
import urllib.request
import uuid
import zipfile
from pathlib import Path

import psutil
import pytest
import yaml
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore
from django.core.management import call_command
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token

from fercore.classes import CLASSES
from inference.wsclient import WebSocketClient
from tests.conftest import ROOT, WorkerProcess, free_port, make_user, subprocess_env, wait_for_port
from tests.datasets.conftest import class_tree, photo

BLOCKED = "torch import blocked"

# One meta-path finder in place of all the others, which it asks in turn: torch and torch.* are
# not found, as where torch is not installed (`import torch` raises ModuleNotFoundError,
# `importlib.util.find_spec("torch")` is None, importlib.metadata knows no torch). An import of
# it, unlike such a probe, is logged with its stack, so a test that finds it in a log can say
# which code tried.
SITECUSTOMIZE = f'''
import sys
import traceback


class HideTorch:
    def __init__(self, finders):
        self.finders = finders

    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            if not _probe(sys._getframe(1)):
                sys.stderr.write("{BLOCKED}: " + name + "\\n" + "".join(traceback.format_stack(limit=30)))
                sys.stderr.flush()
            return None
        for finder in self.finders:
            find = getattr(finder, "find_spec", None)
            spec = find(name, path, target) if find else None
            if spec is not None:
                return spec
        return None

    def find_distributions(self, *args, **kwargs):
        for finder in self.finders:
            for distribution in getattr(finder, "find_distributions", lambda *a, **k: ())(*args, **kwargs):
                if (distribution.metadata["Name"] or "").lower() != "torch":
                    yield distribution

    def invalidate_caches(self):
        for finder in self.finders:
            if hasattr(finder, "invalidate_caches"):
                finder.invalidate_caches()


def _probe(frame):
    """Called from importlib.util.find_spec: a check whether torch is there, not an import."""
    while frame is not None:
        code = frame.f_code  # importlib.util is frozen in 3.11: "<frozen importlib.util>"
        if code.co_name == "find_spec" and code.co_filename.endswith(("importlib.util>", "importlib/util.py")):
            return True
        frame = frame.f_back
    return False


sys.meta_path[:] = [HideTorch(list(sys.meta_path))]
'''


def torchless_env(base: dict, tmp_path: Path) -> dict:
    """`base` plus a sitecustomize.py (found first on PYTHONPATH) that makes torch unimportable."""
    folder = tmp_path / "no-torch"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = dict(base)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(folder), base.get("PYTHONPATH", "")]))
    return env


def run_python(code: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


# ---------------------------------------------------------------- without a server


def test_the_blocker_hides_torch_as_if_it_were_not_installed(tmp_path):
    env = torchless_env(dict(os.environ), tmp_path)
    probe = run_python("""
        import importlib.metadata, importlib.util
        print(importlib.util.find_spec("torch"), importlib.metadata.version("numpy") > "1")
        importlib.metadata.version("torch")
    """, env)
    assert probe.stdout.split() == ["None", "True"] and "No package metadata was found for torch" in probe.stderr
    assert BLOCKED not in probe.stderr
    result = run_python("import numpy, torch", env)
    assert "ModuleNotFoundError: No module named 'torch'" in result.stderr and BLOCKED in result.stderr


def test_the_recipe_and_the_architecture_catalogue_load_no_torch():
    result = run_python("""
        import json, sys
        from training_jobs.ml.config import TrainConfig
        config = TrainConfig.from_dict({})
        TrainConfig.fields_schema()
        assert "torch" not in sys.modules, "TrainConfig loaded torch"
        import django
        django.setup()
        from training_jobs.api import architecture_catalogue
        from training_jobs.services import validate_config
        names = [row["name"] for row in architecture_catalogue()]
        validate_config({"architecture": "hybrid_resnet34_50"})
        assert "torch" not in sys.modules, "the catalogue or validate_config loaded torch"
        print(json.dumps([config.architecture, names]))
    """, subprocess_env(Path(settings.MEDIA_ROOT)))
    assert result.returncode == 0, result.stderr
    architecture, names = json.loads(result.stdout)
    assert architecture == "adapted_residual" and "hybrid_resnet34_50" in names and len(names) == 8


def test_evaluate_model_needs_no_torch(tmp_path, model_file):
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in class_tree(per_class=2).items():
            zf.writestr(name, data)
    env = torchless_env(subprocess_env(settings.MEDIA_ROOT), tmp_path)
    result = subprocess.run([sys.executable, "manage.py", "evaluate_model", "--model", str(model_file),
                             "--dataset", str(archive), "--json"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["num_samples"] == 2 * len(CLASSES)
    assert BLOCKED not in result.stderr


def test_quantize_model_needs_no_torch(tmp_path, model_file):
    archive = tmp_path / "faces.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name, data in class_tree(per_class=4).items():
            zf.writestr(name, data)
    env = torchless_env(subprocess_env(settings.MEDIA_ROOT), tmp_path)
    result = subprocess.run([sys.executable, "manage.py", "quantize_model", "--model", str(model_file), "--dataset",
                             str(archive), "--calibration", "14", "--validation", "14", "--max-drop", "100", "--json"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["validation_faces"] == 14
    assert BLOCKED not in result.stderr


@pytest.mark.worker
def test_the_web_process_has_no_torch_after_the_new_run_page_even_where_torch_is_installed(
        transactional_db, monkeypatch):
    for name, value in subprocess_env(settings.MEDIA_ROOT).items():
        if name in ("DATABASE_URL", "MEDIA_ROOT", "REDIS_URL"):
            monkeypatch.setenv(name, value)  # the server it starts uses the test database
    out = io.StringIO()
    call_command("benchmark_web_startup", "--repeats", "1", "--settle", "0", stdout=out)
    assert re.search(r"PyTorch loaded +no", out.getvalue()), out.getvalue()


# ---------------------------------------------------------------- packaging


def test_torch_and_matplotlib_are_the_train_extras_not_base_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [re.split(r"[<>=!~;\[ ]", requirement)[0] for requirement in project["dependencies"]]
    assert "torch" not in names and "matplotlib" not in names
    assert "onnxruntime" in names
    train = [re.split(r"[<>=!~;\[ ]", requirement)[0] for requirement in project["optional-dependencies"]["train"]]
    assert set(train) == {"torch", "matplotlib"}


def test_only_the_training_worker_uses_the_training_image():
    services = yaml.safe_load((ROOT / "docker" / "compose.yaml").read_text())["services"]
    dockerfiles = {name: service["build"]["dockerfile"] for name, service in services.items() if "build" in service}
    assert dockerfiles == {"migrate": "docker/Dockerfile", "web": "docker/Dockerfile",
                           "worker-train": "docker/Dockerfile.train", "worker-infer": "docker/Dockerfile"}
    assert "pip install ." in (ROOT / "docker" / "Dockerfile").read_text()
    assert "pip install '.[train]'" in (ROOT / "docker" / "Dockerfile.train").read_text()


# ---------------------------------------------------------------- every route of the URLconf

# Route (as the URLconf spells it) -> the requests that cover it: (method, path, expected statuses).
# Paths are formatted with the ids of the records the walk creates. A route added to the URLconf
# must be added here (test_every_route_is_walked), so this walk keeps covering the whole site.
ROUTES = {
    "": [("GET", "/", {302})],
    "favicon.ico": [("GET", "/favicon.ico", {302})],
    "static-lib/plotly.min.js": [("GET", "/static-lib/plotly.min.js", {200})],
    "accounts/login/": [("GET", "/accounts/login/", {200, 302})],
    "accounts/signup/": [("GET", "/accounts/signup/", {200, 302})],
    "admin/login/": [("GET", "/admin/login/", {200, 302})],
    "api/schema/": [("GET", "/api/schema/", {200})],
    "api/docs/": [("GET", "/api/docs/", {200})],
    "datasets/": [("GET", "/datasets/", {200})],
    "datasets/<int:pk>/": [("GET", "/datasets/{dataset}/", {200})],
    "api/datasets/": [("GET", "/api/datasets/", {200})],
    "api/datasets/<int:pk>/": [("GET", "/api/datasets/{dataset}/", {200})],
    "api/datasets/<int:pk>/delete-preview/": [("GET", "/api/datasets/{dataset}/delete-preview/", {200})],
    "api/datasets/<int:pk>/export.zip": [("GET", "/api/datasets/{dataset}/export.zip", {200})],
    "api/datasets/<int:pk>/export.csv": [("GET", "/api/datasets/{dataset}/export.csv", {200})],
    "api/datasets/<int:pk>/versions/": [("GET", "/api/datasets/{dataset}/versions/", {200})],
    "api/datasets/<int:pk>/versions/diff/": [("GET", "/api/datasets/{dataset}/versions/diff/?from=1&to=1", {200})],
    "api/datasets/<int:pk>/items/<int:index>.png": [("GET", "/api/datasets/{dataset}/items/0.png", {200})],
    "api/datasets/<int:pk>/items/<int:item>/": [("GET", "/api/datasets/{dataset}/items/1/", {405})],
    "api/datasets/<int:pk>/label-issues/": [("GET", "/api/datasets/{dataset}/label-issues/", {200})],
    # No body: the default plan (5 folds of the quick preset), estimated without torch.
    "api/datasets/<int:pk>/label-issues/estimate/": [("POST", "/api/datasets/{dataset}/label-issues/estimate/", {200})],
    "datasets/<int:pk>/label-issues/": [("GET", "/datasets/{dataset}/label-issues/", {200})],
    "api/datasets/<int:pk>/mean/<str:class_name>.png": [("GET", "/api/datasets/{dataset}/mean/happy.png", {200})],
    "labeling/": [("GET", "/labeling/", {200})],
    "labeling/<int:pk>/": [("GET", "/labeling/{labeling_set}/", {200})],
    "api/labeling/sets/": [("GET", "/api/labeling/sets/", {200})],
    "api/labeling/sets/<int:pk>/": [("GET", "/api/labeling/sets/{labeling_set}/", {200})],
    "api/labeling/sets/<int:pk>/delete-preview/": [("GET", "/api/labeling/sets/{labeling_set}/delete-preview/", {200})],
    "api/labeling/sets/<int:pk>/faces/": [("GET", "/api/labeling/sets/{labeling_set}/faces/", {200})],
    "api/labeling/faces/<int:pk>/": [("GET", "/api/labeling/faces/{face}/", {200})],
    "api/labeling/faces/<int:pk>.png": [("GET", "/api/labeling/faces/{face}.png", {200})],
    # POST-only routes: a GET is answered 405 by the view, which is still imported and dispatched.
    "api/labeling/sets/<int:pk>/photos/": [("GET", "/api/labeling/sets/{labeling_set}/photos/", {405})],
    "api/labeling/sets/<int:pk>/accept/": [("GET", "/api/labeling/sets/{labeling_set}/accept/", {405})],
    "api/labeling/sets/<int:pk>/undo/": [("GET", "/api/labeling/sets/{labeling_set}/undo/", {405})],
    "api/labeling/sets/<int:pk>/create-dataset/": [
        ("GET", "/api/labeling/sets/{labeling_set}/create-dataset/", {405})],
    "runs/": [("GET", "/runs/", {200})],
    "runs/new/": [("GET", "/runs/new/", {200})],
    "runs/compare/": [("GET", "/runs/compare/?ids={run},{finished_run}", {200})],
    "runs/<int:pk>/": [("GET", "/runs/{run}/", {200}), ("GET", "/runs/{finished_run}/", {200})],
    "api/runs/": [("GET", "/api/runs/", {200})],
    "api/runs/limits/": [("GET", "/api/runs/limits/", {200}), ("GET", "/api/runs/limits/?dataset={dataset}", {200})],
    "api/runs/estimate/": [("GET", "/api/runs/estimate/", {405})],
    "api/runs/presets/": [("GET", "/api/runs/presets/", {200})],
    # Both runs are on the dataset's first version: nothing to compare on common faces.
    "api/runs/compare/data/": [("GET", "/api/runs/compare/data/?ids={run},{finished_run}", {400})],
    "api/runs/<int:pk>/": [("GET", "/api/runs/{run}/", {200}), ("GET", "/api/runs/{finished_run}/", {200})],
    "api/runs/<int:pk>/delete-preview/": [("GET", "/api/runs/{run}/delete-preview/", {200}),
                                          ("GET", "/api/runs/{finished_run}/delete-preview/", {200})],
    "api/runs/<int:pk>/cancel/": [("POST", "/api/runs/{run}/cancel/", {200})],
    # The dataset has not changed since the run: refused as no_new_version, no run created.
    "api/runs/<int:pk>/retrain/": [("POST", "/api/runs/{finished_run}/retrain/", {409})],
    # A run stored finished, with no per-face evaluation: the cell answers that it predates them.
    "api/runs/<int:pk>/confusion/": [("GET", "/api/runs/{finished_run}/confusion/?true=fear&predicted=sad", {404})],
    "api/runs/<int:pk>/confusion/review/": [("GET", "/api/runs/{finished_run}/confusion/review/", {405})],
    "api/architectures/": [("GET", "/api/architectures/", {200})],
    "api/recipe/": [("GET", "/api/recipe/", {200})],
    "models/": [("GET", "/models/", {200})],
    "api/models/": [("GET", "/api/models/", {200})],
    "api/models/default/": [("GET", "/api/models/default/", {200})],
    "api/models/<str:pk>/": [("GET", "/api/models/{version}/", {200}), ("GET", "/api/models/active/", {200})],
    "api/models/<str:pk>/onnx/": [("GET", "/api/models/{version}/onnx/", {200}),
                                  ("GET", "/api/models/default/onnx/", {200})],
    "api/models/<int:pk>/activate/": [("POST", "/api/models/{version}/activate/", {200})],
    "api/models/default/activate/": [("POST", "/api/models/default/activate/", {200})],
    "predict/": [("GET", "/predict/", {200})],
    "webcam/": [("GET", "/webcam/", {200})],
    "jobs/": [("GET", "/jobs/", {200})],
    "jobs/<int:pk>/": [("GET", "/jobs/{job}/", {200})],
    "api/jobs/": [("GET", "/api/jobs/", {200})],
    "api/jobs/<int:pk>/": [("GET", "/api/jobs/{job}/", {200})],
    "api/jobs/<int:pk>/delete-preview/": [("GET", "/api/jobs/{job}/delete-preview/", {200})],
    "api/jobs/<int:pk>/cancel/": [("GET", "/api/jobs/{job}/cancel/", {405})],
    r"^api/jobs/(?P<pk>\d+)/results\.(?P<fmt>csv|json)$": [("GET", "/api/jobs/{job}/results.csv", {200}),
                                                             ("GET", "/api/jobs/{job}/results.json", {200})],
}
# Routes the walk leaves to their own tests: they change the session, or are POSTed below.
NOT_WALKED = {
    "accounts/logout/": "ends the session the walk uses",
    "api/auth/register/": "POST only; registration has its own tests",
    "api/auth/token/": "POST only; the walk's token comes from the database",
    "api/predict/": "POSTed below",
}


def url_routes(patterns=None, prefix="") -> list[str]:
    """Every route of the URLconf as it is spelled there; the admin's include counts as `admin/`."""
    routes = []
    for pattern in get_resolver().url_patterns if patterns is None else patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            routes += ["admin/"] if route == "admin/" else url_routes(pattern.url_patterns, route)
        elif isinstance(pattern, URLPattern):
            routes.append(route)
    return routes


def test_every_route_is_walked():
    missing = set(url_routes()) - set(ROUTES) - set(NOT_WALKED) - {"admin/"}
    assert not missing, f"add these routes to ROUTES in {Path(__file__).name}: {sorted(missing)}"
    assert not set(ROUTES) - set(url_routes()), "ROUTES names routes the URLconf no longer has"


# ---------------------------------------------------------------- the live walk


class Http:
    """Requests to the live server as one user: a session cookie for pages, a token for the API."""

    def __init__(self, base: str, user):
        self.base, self.user = base, user
        session = SessionStore()
        session["_auth_user_id"] = str(user.pk)
        session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
        session["_auth_user_hash"] = user.get_session_auth_hash()
        session.create()
        self.cookie = f"{settings.SESSION_COOKIE_NAME}={session.session_key}"
        self.token = Token.objects.get_or_create(user=user)[0].key
        self.opener = urllib.request.build_opener(NoRedirects)

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "") -> tuple[int, bytes]:
        headers = {"Authorization": f"Token {self.token}"} if path.startswith("/api/") else {"Cookie": self.cookie}
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers)
        try:
            with self.opener.open(request, timeout=120) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def get_json(self, path: str) -> dict:
        status, body = self.request("GET", path)
        assert status == 200, (path, status, body[:500])
        return json.loads(body)

    def post_json(self, path: str, data: dict) -> tuple[int, dict]:
        status, body = self.request("POST", path, json.dumps(data).encode(), "application/json")
        return status, json.loads(body or b"{}")

    def post_files(self, path: str, fields: dict, files: dict) -> tuple[int, dict]:
        """multipart/form-data: `files` maps a field to (file name, bytes)."""
        boundary = uuid.uuid4().hex
        parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
                 for name, value in fields.items()]
        for name, (filename, data) in files.items():
            parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                         f'Content-Type: application/octet-stream\r\n\r\n'.encode() + data + b"\r\n")
        parts.append(f"--{boundary}--\r\n".encode())
        status, body = self.request("POST", path, b"".join(parts), f"multipart/form-data; boundary={boundary}")
        return status, json.loads(body or b"{}")

    def wait_until_settled(self, path: str, timeout: float = 120) -> dict:
        """GET `path` until its status leaves the in-progress ones."""
        deadline = time.monotonic() + timeout
        while True:
            body = self.get_json(path)
            if status_of(body) not in ("queued", "running", "importing", "processing", "pending"):
                return body
            assert time.monotonic() < deadline, f"{path} still {status_of(body)} after {timeout:.0f} s"
            time.sleep(0.3)


def status_of(record: dict) -> str:
    return record["status"]


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the 3xx itself is the answer to check


def zip_bytes(files: dict) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def torchless_site(transactional_db, tmp_path, served_model):
    """The web server (`python -m ferweb.serve`, one process) and an inference-queue worker, both
    unable to import torch, on the test database."""
    from ferweb.celery import app

    app.control.purge()
    env = torchless_env(subprocess_env(settings.MEDIA_ROOT), tmp_path)
    port = free_port()
    log_path = tmp_path / "web.log"
    log = open(log_path, "ab")
    server = subprocess.Popen([sys.executable, "-m", "ferweb.serve", "--port", str(port), "--workers", "1"],
                              cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    worker = WorkerProcess(env, ("inference",), tmp_path / "worker.log", f"notorch-{os.getpid()}@localhost").start()
    site = type("TorchlessSite", (), {"url": f"http://127.0.0.1:{port}", "port": port, "server": server,
                                      "worker": worker, "log": log_path})
    try:
        wait_for_port(port, server)
        yield site
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
        worker.stop()
        # Shown by pytest for a failed test only.
        print("web server log:", log_path.read_text(errors="replace")[-4000:], sep="\n")
        print("inference worker log:", worker.output()[-4000:], sep="\n")


def finished_run(owner, dataset):
    """A succeeded run with a full metric set, the way the training worker records one."""
    import numpy as np

    from training_jobs.ml.metrics import evaluate
    from training_jobs.models import TrainingRun

    labels = np.arange(len(CLASSES)).repeat(3)
    probs = np.random.default_rng(0).dirichlet(np.ones(len(CLASSES)), len(labels))
    return TrainingRun.objects.create(owner=owner, dataset=dataset, name="finished", architecture="light_residual",
                                      optimizer="nadam", config={"epochs": 1}, status="succeeded",
                                      progress=100, metrics=evaluate(labels, probs), param_count=551_175)


def model_version(owner, run, served_model):
    from inference.models import ModelVersion

    target = Path(settings.MEDIA_ROOT) / "models" / "walk.onnx"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(served_model, target)
    return ModelVersion.objects.create(owner=owner, run_id=run.pk, onnx_file="models/walk.onnx",
                                       architecture="light_residual", version="walk", metrics={"accuracy": 0.5})


async def webcam_and_run_stream(port: int, cookie: str, frame: bytes, run_id: int) -> tuple[list, dict]:
    webcam = await WebSocketClient.connect("127.0.0.1", port, "/ws/webcam/", {"Cookie": cookie})
    replies = [json.loads(await webcam.recv())]  # ready
    await webcam.send(frame)
    replies.append(json.loads(await webcam.recv()))
    await webcam.close()
    progress = await WebSocketClient.connect("127.0.0.1", port, f"/ws/runs/{run_id}/", {"Cookie": cookie})
    history = json.loads(await progress.recv())
    await progress.close()
    return replies, history


@pytest.mark.worker
def test_the_whole_site_works_without_torch(torchless_site, served_model):
    alice, carol = make_user("alice"), make_user("carol", is_staff=True, is_superuser=True)
    as_alice, as_carol = Http(torchless_site.url, alice), Http(torchless_site.url, carol)

    # 1. a dataset upload that the worker imports
    status, body = as_alice.post_files("/api/datasets/", {"name": "drawn"},
                                       {"file": ("faces.zip", zip_bytes(class_tree(per_class=6)))})
    assert status == 201, body
    dataset = as_alice.wait_until_settled(f"/api/datasets/{body['id']}/")
    assert status_of(dataset) == "ready", dataset

    # 2. a run: validated (the architecture against the catalogue) and queued, no torch needed
    status, body = as_alice.post_json("/api/runs/", {"dataset": dataset["id"], "architecture": "vgg99"})
    assert status == 400 and "light_residual" in body["fields"]["architecture"][0], body
    status, run = as_alice.post_json("/api/runs/", {"dataset": dataset["id"], "architecture": "light_residual",
                                                     "epochs": 1, "batch_size": 16})
    assert status == 201 and status_of(run) == "queued", run

    # 3. a prediction, a batch job and a labeling set, the last two run by the worker
    status, prediction = as_alice.post_files("/api/predict/", {}, {"image": ("photo.jpg", photo(faces=1))})
    assert status == 200 and "faces" in prediction, prediction
    status, job = as_alice.post_files("/api/jobs/", {}, {"file": ("photos.zip", zip_bytes(
        {"a.jpg": photo(faces=1, seed=1), "b.jpg": photo(faces=2, seed=2)}))})
    assert status == 201, job
    assert status_of(as_alice.wait_until_settled(f"/api/jobs/{job['id']}/")) == "succeeded"
    status, labeling_set = as_alice.post_files("/api/labeling/sets/", {"name": "photos"},
                                               {"files": ("group.jpg", photo(faces=2, seed=3))})
    assert status == 201, labeling_set
    assert status_of(as_alice.wait_until_settled(f"/api/labeling/sets/{labeling_set['id']}/")) == "ready"
    faces = as_alice.get_json(f"/api/labeling/sets/{labeling_set['id']}/faces/")["results"]
    assert faces, "the drawn photo's faces were not found"

    # 4. a webcam frame, and a run's progress stream
    replies, history = asyncio.run(webcam_and_run_stream(torchless_site.port, as_alice.cookie, photo(faces=1),
                                                         run["id"]))
    assert replies[0]["type"] == "ready" and replies[1]["type"] == "prediction", replies
    assert history["run"] == run["id"], history

    # 5. every page and API route, with the records made above
    from ferweb.datasets.models import Dataset

    done = finished_run(alice, Dataset.objects.get(pk=dataset["id"]))
    ids = {"dataset": dataset["id"], "run": run["id"], "finished_run": done.pk, "job": job["id"],
           "labeling_set": labeling_set["id"], "face": faces[0]["id"],
           "version": model_version(alice, done, served_model).pk}
    for route, requests in ROUTES.items():
        for method, path, expected in requests:
            status, body = as_alice.request(method, path.format(**ids))
            assert status in expected, (route, path.format(**ids), status, body[:800])

    # 6. the admin, as staff: every model's list, add form and first record
    from django.contrib import admin

    pages = ["/admin/"]
    for model, model_admin in admin.site._registry.items():
        info = model._meta.app_label, model._meta.model_name
        pages += [reverse(f"admin:{info[0]}_{info[1]}_changelist"), reverse(f"admin:{info[0]}_{info[1]}_add")]
        first = model._default_manager.order_by("pk").first()
        if first is not None:
            pages.append(reverse(f"admin:{info[0]}_{info[1]}_change", args=[first.pk]))
    for page in pages:
        status, body = as_carol.request("GET", page)
        expected = {200, 403} if page.endswith("/add/") else {200}  # some models are never added by hand
        assert status in expected, (page, status, body[:800])

    # 7. neither process tried to import torch, nor failed otherwise; the server never mapped libtorch
    process = psutil.Process(torchless_site.server.pid)
    assert not [m.path for m in process.memory_maps() if "libtorch" in m.path]
    for name, text in (("web server", torchless_site.log.read_text(errors="replace")),
                       ("inference worker", torchless_site.worker.output())):
        assert BLOCKED not in text, f"the {name} tried to import torch:\n{text[-6000:]}"
        assert not re.search(r"ImportError|ModuleNotFoundError|Internal Server Error", text), \
            f"the {name} log:\n{text[-6000:]}"
