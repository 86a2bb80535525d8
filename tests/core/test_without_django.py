"""The core and the ML library where Django cannot be imported at all: every module loads, the dataset
loader reads a zip (finding the face in a photo), a training run goes through the command line, and the
exported model's metadata reads back through the model contract."""
import json
import os
import pkgutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

import fercore
import training_jobs.ml
from fercore.classes import CLASS_INDEX, CLASSES
from fercore.preprocess import MODEL_INPUT, to_model_input
from fercore.readers import read_dataset
from inference.synthetic import draw_face, encode, jpeg, scene

ROOT = Path(__file__).resolve().parents[2]
# Runs first in every child: `import django` (or anything under it) fails as if Django were not installed.
NO_DJANGO = """
import sys

class NoDjango:
    def find_spec(self, name, path=None, target=None):
        if name == "django" or name.startswith("django."):
            raise ImportError(f"{name} cannot be imported here: this code must run without Django")
        return None

sys.meta_path.insert(0, NoDjango())
"""
# Runs last: nothing of Django or Celery got in by a back door.
NOTHING_LOADED = """
loaded = [m for m in sys.modules if m.split(".")[0] in ("django", "celery")]
assert not loaded, loaded
"""


def without_django(code: str, timeout: int = 300) -> str:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", NO_DJANGO + textwrap.dedent(code) + NOTHING_LOADED],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def faces_zip(path: Path) -> Path:
    """Twelve face crops in split and class folders, one photo whose face must be found, and a README."""
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(12):
            label = ("happy", "sad")[i % 2]
            split = "test" if i >= 10 else "train"
            archive.writestr(f"{split}/{label}/{i}.png", encode(draw_face(48, smile=1.0 if label == "happy" else -1.0, seed=i), ".png"))
        photo, _ = scene([draw_face(170, smile=1.0, seed=99)], seed=5)
        archive.writestr("train/happy/party.jpg", jpeg(photo))
        archive.writestr("README.txt", "not a face")
    return path


def test_the_guard_really_keeps_django_out():
    out = without_django("""
        try:
            import django.conf
        except ImportError as error:
            print("refused:", error)
    """)
    assert "refused: django" in out


def test_the_core_and_the_ml_library_import_without_django():
    modules = [f"fercore.{m.name}" for m in pkgutil.iter_modules(fercore.__path__)]
    modules += [f"training_jobs.ml.{m.name}" for m in pkgutil.iter_modules(training_jobs.ml.__path__)]
    modules += ["inference.engine", "inference.tracking"]
    assert "fercore.archive" in modules and "training_jobs.ml.trainer" in modules
    without_django(f"""
        import importlib
        for name in {modules!r}:
            importlib.import_module(name)
    """)


def test_the_ml_loader_reads_a_zip_as_the_import_does(tmp_path):
    path = faces_zip(tmp_path / "faces.zip")
    without_django(f"""
        import numpy as np
        from training_jobs.ml.data import load_dataset_file

        data = load_dataset_file({str(path)!r})
        np.savez({str(tmp_path / "loaded.npz")!r}, pixels=data.pixels, labels=data.labels, splits=data.splits)
    """)
    loaded = np.load(tmp_path / "loaded.npz")
    imported = read_dataset(path)  # what an upload of the same zip stores (Django-free, in this process)
    assert imported.detected == 1 and len(imported) == 13  # twelve crops and the face found in the photo
    assert np.array_equal(loaded["pixels"], imported.pixels)
    assert np.array_equal(loaded["labels"], imported.labels)
    assert loaded["splits"].tolist() == imported.splits.tolist()
    assert sorted(set(loaded["splits"].tolist())) == ["test", "train"]
    assert loaded["labels"].tolist().count(CLASS_INDEX["happy"]) == 7


def test_a_tiny_training_run_exports_a_model_whose_metadata_reads_back(tmp_path):
    path = faces_zip(tmp_path / "faces.zip")
    model = tmp_path / "tiny.onnx"
    out = without_django(f"""
        import json, runpy, sys

        sys.argv = ["trainer", {str(path)!r}, "--workdir", {str(tmp_path / "run")!r}, "--onnx", {str(model)!r},
                    "--version", "tiny-1", "--architecture", "light_residual", "--epochs", "1", "--batch-size", "16",
                    "--num-threads", "1", "--occlusion-per-class", "0"]
        try:
            runpy.run_module("training_jobs.ml.trainer", run_name="__main__")
        except SystemExit as stop:
            assert stop.code in (0, None), stop.code

        from fercore.model_contract import parse_metadata, read_metadata

        meta = parse_metadata(read_metadata({str(model)!r}))
        print(json.dumps({{"classes": meta.classes, "input": meta.input, "architecture": meta.architecture,
                           "version": meta.version, "metrics": sorted(meta.metrics)}}))
    """, timeout=600)
    meta = json.loads(out.strip().splitlines()[-1])
    assert meta["classes"] == list(CLASSES)
    assert meta["input"] == MODEL_INPUT == {"height": 48, "width": 48, "channels": 1, "scale": 1 / 255}
    assert (meta["architecture"], meta["version"]) == ("light_residual", "tiny-1")
    assert "accuracy" in meta["metrics"]
    # A stranger runs it with ONNX Runtime alone: faces scaled to [0, 1] in, seven logits out.
    faces = read_dataset(path).pixels
    logits = ort.InferenceSession(str(model)).run(["logits"], {"input": to_model_input(faces)})[0]
    assert logits.shape == (len(faces), len(CLASSES)) and np.isfinite(logits).all()
