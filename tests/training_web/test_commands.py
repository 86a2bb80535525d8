"""The command-line side: train (same recipe, recorded run), export_onnx and evaluate_model."""
import io
import json
import zipfile

import cv2
import numpy as np
import onnxruntime as ort
import pytest
from django.core.management import CommandError, call_command
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support, roc_auc_score

from fercore.classes import CLASSES
from fercore.preprocess import softmax, to_model_input
from tests.training_web.conftest import make_ready_dataset
from tests.training_web.faces import drawn_faces
from training_jobs.models import TrainingRun

FLAGS = ["--architecture", "light_residual", "--epochs", "3", "--batch-size", "16", "--num-threads", "1",
         "--temperature-scaling", "false", "--seed", "1"]


def faces_zip(path, per_class=12, seed=5):
    """A folder-per-class zip of drawn faces, as a user would upload one."""
    pixels, labels = drawn_faces(per_class, seed=seed)
    with zipfile.ZipFile(path, "w") as archive:
        for i, (face, label) in enumerate(zip(pixels, labels)):
            archive.writestr(f"test/{CLASSES[label]}/face_{i}.png", cv2.imencode(".png", face)[1].tobytes())
    return pixels, labels


@pytest.mark.django_db(transaction=True)
def test_train_export_and_evaluate_from_the_command_line(alice, tmp_path):
    dataset = make_ready_dataset(alice, per_class=60)
    out, err = io.StringIO(), io.StringIO()
    call_command("train", "--dataset", str(dataset.pk), "--user", "alice", *FLAGS, stdout=out, stderr=err)
    run = TrainingRun.objects.get()
    assert run.status == "succeeded" and run.owner == alice
    assert run.config["epochs"] == 3 and run.config["optimizer"] == "nadam"
    assert f"run {run.pk} succeeded" in out.getvalue()
    assert "epoch 3/3" in err.getvalue(), "prints a progress line per epoch"
    version = run.model_versions.get()

    # Fine-tuning from that run starts from its best weights.
    call_command("train", "--dataset", str(dataset.pk), "--user", "alice", "--init-from-run", str(run.pk),
                 "--freeze-backbone-epochs", "1", *FLAGS, stdout=io.StringIO(), stderr=io.StringIO())
    tuned = TrainingRun.objects.exclude(pk=run.pk).get()
    assert tuned.status == "succeeded" and tuned.init_from_run == run
    assert tuned.config["init_checkpoint"].endswith(f"runs/{run.pk}/best.pt")
    assert any("initialised from best.pt" in note for note in tuned.metrics["notes"])

    exported = tmp_path / "again.onnx"
    out = io.StringIO()
    call_command("export_onnx", "--run", str(run.pk), "--out", str(exported), stdout=out)
    assert "max |ONNX - PyTorch|" in out.getvalue()
    # Same weights, same graph: the re-export computes what the recorded version computes.
    batch = to_model_input(drawn_faces(4, seed=3)[0])
    first = ort.InferenceSession(str(version.path)).run(["logits"], {"input": batch})[0]
    again = ort.InferenceSession(str(exported)).run(["logits"], {"input": batch})[0]
    assert np.abs(first - again).max() < 1e-5

    # evaluate_model on a zip the model never saw, checked against scikit-learn.
    archive = tmp_path / "faces.zip"
    pixels, labels = faces_zip(archive)
    out = io.StringIO()
    call_command("evaluate_model", "--model", str(exported), "--dataset", str(archive), "--json", stdout=out)
    report = json.loads(out.getvalue())
    probs = softmax(ort.InferenceSession(str(exported)).run(["logits"], {"input": to_model_input(pixels)})[0])
    predicted = probs.argmax(1)
    assert report["num_samples"] == len(labels)
    assert report["accuracy"] == pytest.approx((predicted == labels).mean())
    assert report["macro_f1"] == pytest.approx(f1_score(labels, predicted, labels=range(7), average="macro",
                                                        zero_division=0))
    assert report["confusion_matrix"] == confusion_matrix(labels, predicted, labels=range(7)).tolist()
    precision, recall, _, support = precision_recall_fscore_support(labels, predicted, labels=range(7),
                                                                    zero_division=0)
    happy = CLASSES.index("happy")
    assert report["per_class"]["happy"]["precision"] == pytest.approx(precision[happy])
    assert report["per_class"]["happy"]["recall"] == pytest.approx(recall[happy])
    assert report["per_class"]["happy"]["support"] == support[happy]
    assert report["per_class"]["happy"]["auc"] == pytest.approx(roc_auc_score(labels == happy, probs[:, happy]),
                                                                abs=1e-4)

    text = io.StringIO()
    call_command("evaluate_model", "--model", str(exported), "--dataset", str(archive), stdout=text)
    assert "macro F1" in text.getvalue() and "specif." in text.getvalue() and "confusion matrix" in text.getvalue()


@pytest.mark.django_db
def test_train_explains_a_bad_recipe(alice):
    dataset = make_ready_dataset(alice, per_class=3)
    with pytest.raises(CommandError, match="optimizer: 'lion' is not one of sgd, adam, adamw, rmsprop, nadam"):
        call_command("train", "--dataset", str(dataset.pk), "--user", "alice", "--optimizer", "lion")
    with pytest.raises(CommandError, match="no dataset 999"):
        call_command("train", "--dataset", "999", "--user", "alice")
    assert not TrainingRun.objects.exists()
