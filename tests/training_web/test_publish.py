"""Shipping a run as the app's default model (train, publish_default_model) and comparing runs (runs_table)."""
import io
import json

import onnx
import numpy as np
import pytest
from django.core.management import CommandError, call_command

from fercore.classes import CLASSES

from tests.training_web.conftest import make_ready_dataset
from training_jobs.models import TrainingRun


def train_tiny(dataset, **recipe) -> TrainingRun:
    call_command("train", dataset=str(dataset.pk), user=dataset.owner.username, epochs=2, batch_size=16,
                 num_threads=1, occlusion_per_class=0, stdout=io.StringIO(), stderr=io.StringIO(), **recipe)
    run = TrainingRun.objects.latest("pk")
    assert run.status == "succeeded", run.error
    return run


@pytest.mark.django_db
def test_a_trained_run_is_published_with_its_card_and_figures(alice, tmp_path):
    run = train_tiny(make_ready_dataset(alice, per_class=20), architecture="fast_resnet", tta_flip=True)
    out, figures = tmp_path / "models", tmp_path / "figures"
    out.mkdir()
    (out / "default.json").write_text(json.dumps({"choices": [{"choice": "flip averaging", "evidence": "+1 point"}],
                                                  "reproduce": ["python manage.py train ..."]}))

    call_command("publish_default_model", run=run.pk, out=str(out), figures=str(figures), stdout=io.StringIO())

    card = json.loads((out / "default.json").read_text())
    meta = {p.key: p.value for p in onnx.load(str(out / "default.onnx")).metadata_props}
    assert card["version"] == meta["fer.version"] and card["version"].startswith("default-")
    assert card["choices"] == [{"choice": "flip averaging", "evidence": "+1 point"}]  # written by people, kept
    assert card["reproduce"] == ["python manage.py train ..."]
    assert card["command"].startswith("python manage.py train --dataset ") and "--tta-flip True" in card["command"]
    assert card["recipe"]["tta_flip"] is True and card["training"]["epochs_run"] == 2
    assert card["metrics_summary"]["accuracy"] == pytest.approx(run.metrics["accuracy"])
    assert card["latency"]["batch1_median_ms_2_threads"] > 0
    assert card["teachers"] == []
    for name in ("default-confusion.png", "default-roc.png", "default-curves.png"):
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The prints of exactly its training faces, not of the faces it was measured on.
    from fercore.face_prints import face_prints
    from training_jobs.services import run_splits

    _, data, splits = run_splits(run.pk)
    prints = np.load(out / "default.faces.npy")
    assert set(prints.tolist()) == set(face_prints(data.pixels[splits.train]).tolist())
    assert not set(face_prints(data.pixels[splits.val]).tolist()) <= set(prints.tolist())


@pytest.mark.django_db
def test_a_run_distilled_from_an_exported_model_names_its_teacher_in_the_card(alice, tmp_path):
    dataset = make_ready_dataset(alice, per_class=20)
    teacher = train_tiny(dataset, architecture="fast_resnet")
    teacher_file = teacher.model_versions.get().path
    student = train_tiny(dataset, architecture="fast_resnet", teacher_checkpoint=str(teacher_file), distill_weight=0.7)
    out = tmp_path / "models"

    call_command("publish_default_model", run=student.pk, out=str(out), figures=str(tmp_path / "f"), stdout=io.StringIO())

    card = json.loads((out / "default.json").read_text())
    meta = {p.key: p.value for p in onnx.load(str(teacher_file)).metadata_props}
    (teacher_card,) = card["teachers"]
    assert teacher_card["path"] == str(teacher_file) and teacher_card["architecture"] == "fast_resnet"
    assert teacher_card["version"] == meta["fer.version"] and len(teacher_card["sha256"]) == 64
    assert f"--teacher-checkpoint {teacher_file}" in card["command"] and "--distill-weight 0.7" in card["command"]


@pytest.mark.django_db
def test_runs_table_puts_finished_runs_side_by_side(alice):
    dataset = make_ready_dataset(alice, per_class=20)
    light, fast = train_tiny(dataset, architecture="light_residual"), train_tiny(dataset, architecture="fast_resnet")

    out = io.StringIO()
    call_command("runs_table", run=[fast.pk, light.pk], json=True, stdout=out)
    rows = json.loads(out.getvalue())
    assert [r["architecture"] for r in rows] == ["fast_resnet", "light_residual"]
    assert rows[1]["accuracy"] == pytest.approx(light.metrics["accuracy"]) and rows[1]["parameters"] == 551_175
    assert rows[0]["epochs"] == 2 and rows[0]["onnx_ms_batch1"] > 0 and rows[0]["onnx_faces_per_s_batch256"] > 0
    assert set(rows[0]["recall"]) == set(CLASSES)

    out = io.StringIO()
    call_command("runs_table", run=[light.pk], stdout=out)
    header, rule, row = out.getvalue().splitlines()
    assert header.startswith("| run | architecture |") and f"| {light.pk} | light_residual | 2 |" in row

    with pytest.raises(CommandError, match=f"no run {fast.pk + 100}"):
        call_command("runs_table", run=[fast.pk + 100])


@pytest.mark.django_db
def test_flip_averaging_is_measured_on_the_runs_own_evaluation_faces(alice, tmp_path):
    run = train_tiny(make_ready_dataset(alice, per_class=20), architecture="fast_resnet", tta_flip=True)
    version = run.model_versions.get()
    plain = tmp_path / "plain.onnx"
    call_command("export_onnx", run=run.pk, out=str(plain), no_tta_flip=True, stdout=io.StringIO())
    meta = {p.key: p.value for p in onnx.load(str(plain)).metadata_props}
    assert json.loads(meta["fer.tta_flip"]) is False

    reports = {}
    for name, path in (("flip", version.path), ("plain", plain)):
        out = io.StringIO()
        call_command("evaluate_model", model=str(path), run=run.pk, json=True, stdout=out)
        reports[name] = json.loads(out.getvalue())
    # With flip averaging the exported model scores what the run recorded, on the same faces.
    assert reports["flip"]["num_samples"] == run.metrics["num_samples"] == reports["plain"]["num_samples"]
    assert reports["flip"]["accuracy"] == pytest.approx(run.metrics["accuracy"], abs=1 / run.metrics["num_samples"])
    assert reports["flip"]["dataset"].startswith(f"run {run.pk}: ")

    # Two --model flags: the ensemble, scored from the two models' averaged logits.
    out = io.StringIO()
    call_command("evaluate_model", "--model", str(version.path), "--model", str(plain), "--run", str(run.pk), "--json",
                 stdout=out)
    ensemble = json.loads(out.getvalue())
    assert ensemble["model"] == f"{version.path}, {plain}"
    from training_jobs.management.commands.evaluate_model import onnx_logits
    from training_jobs.services import run_splits

    _run, data, splits = run_splits(run.pk)
    faces = data.pixels[splits.test]
    mean = (onnx_logits(version.path, faces, batch_size=64, threads=1) + onnx_logits(plain, faces, batch_size=64, threads=1)) / 2
    assert ensemble["accuracy"] == pytest.approx((mean.argmax(1) == data.labels[splits.test]).mean())

    with pytest.raises(CommandError, match="no run 999"):
        call_command("evaluate_model", model=str(plain), run=999)
