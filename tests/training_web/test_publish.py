"""Shipping a run as the app's default model: the train command, then publish_default_model."""
import io
import json

import onnx
import pytest
from django.core.management import call_command

from tests.training_web.conftest import make_ready_dataset
from training_jobs.models import TrainingRun


@pytest.mark.django_db
def test_a_trained_run_is_published_with_its_card_and_figures(alice, tmp_path):
    dataset = make_ready_dataset(alice, per_class=20)
    call_command("train", dataset=str(dataset.pk), user="alice", architecture="fast_resnet", epochs=2, batch_size=16,
                 num_threads=1, tta_flip=True, occlusion_per_class=0, stdout=io.StringIO(), stderr=io.StringIO())
    run = TrainingRun.objects.get()
    assert run.status == "succeeded", run.error
    out, figures = tmp_path / "models", tmp_path / "figures"
    out.mkdir()
    (out / "default.json").write_text(json.dumps({"choices": [{"choice": "flip averaging", "evidence": "+1 point"}]}))

    call_command("publish_default_model", run=run.pk, out=str(out), figures=str(figures), stdout=io.StringIO())

    card = json.loads((out / "default.json").read_text())
    meta = {p.key: p.value for p in onnx.load(str(out / "default.onnx")).metadata_props}
    assert card["version"] == meta["fer.version"] and card["version"].startswith("default-")
    assert card["choices"] == [{"choice": "flip averaging", "evidence": "+1 point"}]  # written by people, kept
    assert card["command"].startswith(f"python manage.py train --dataset ") and "--tta-flip True" in card["command"]
    assert card["recipe"]["tta_flip"] is True and card["training"]["epochs_run"] == 2
    assert card["metrics_summary"]["accuracy"] == pytest.approx(run.metrics["accuracy"])
    assert card["latency"]["batch1_median_ms_2_threads"] > 0
    for name in ("default-confusion.png", "default-roc.png"):
        assert (figures / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
