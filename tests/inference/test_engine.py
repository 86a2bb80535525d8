"""The engine against the evaluation path, batching, and hot reload of the active model."""
import os
import threading

import numpy as np
import onnxruntime as ort
import pytest

from fercore.classes import CLASSES
from fercore.preprocess import softmax, to_model_input
from inference.engine import Engine, ModelUnavailable, classify
from inference.synthetic import contract_model

from .test_predict_api import post


@pytest.fixture
def faces():
    rng = np.random.default_rng(5)
    return rng.integers(0, 256, (40, 48, 48), dtype=np.uint8)


def test_engine_probabilities_equal_the_evaluation_path(model_file, faces):
    from training_jobs.management.commands.evaluate_model import evaluate_onnx
    from training_jobs.ml.metrics import evaluate

    engine = Engine(threads=2, min_face_size=24)
    model = engine.models.get(model_file)
    assert model.classes == CLASSES and model.version == "test-default"
    probs = engine.classify(model, faces)

    # A stranger's run of the file: plain onnxruntime over the one preprocessing definition.
    session = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    direct = softmax(session.run(["logits"], {"input": to_model_input(faces)})[0].astype(np.float64))
    np.testing.assert_allclose(probs, direct, atol=1e-6)

    # The evaluate_model command's metrics, from its probabilities and from ours, agree.
    labels = np.arange(len(faces)) % len(CLASSES)
    ours = evaluate(labels, probs.astype(np.float64))
    theirs = evaluate_onnx(model_file, faces, labels)
    assert ours["accuracy"] == theirs["accuracy"]
    assert ours["confusion_matrix"] == theirs["confusion_matrix"]
    assert ours["macro_auc"] == pytest.approx(theirs["macro_auc"], abs=1e-9)


def test_concurrent_callers_share_batched_calls_and_get_their_own_rows(model_file, faces):
    engine = Engine(threads=2, min_face_size=24)
    model = engine.models.get(model_file)
    expected = classify(model, faces)
    results = {}

    def worker(i):
        results[i] = engine.classify(model, faces[i * 4:(i + 1) * 4])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    np.testing.assert_allclose(np.concatenate([results[i] for i in range(10)]), expected, atol=1e-6)


def test_a_missing_model_raises_a_clear_error(tmp_path):
    engine = Engine(threads=1, min_face_size=24)
    with pytest.raises(ModelUnavailable, match="No model available"):
        engine.models.get(tmp_path / "missing.onnx")


def test_a_replaced_model_file_is_picked_up_without_restart(alice_api, model_file, two_face_jpeg):
    before = post(alice_api, two_face_jpeg).json()["faces"][0]["probabilities"]
    contract_model(model_file, seed=99, version="replaced")
    stat = model_file.stat()
    os.utime(model_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    after = post(alice_api, two_face_jpeg).json()["faces"][0]["probabilities"]
    assert after != before


def test_activating_a_model_version_switches_predictions_at_once(alice, alice_api, bob_api, model_file, two_face_jpeg, settings):
    from django.core.files.base import ContentFile

    from inference.models import ModelVersion

    other = contract_model(model_file.parent / "other.onnx", seed=42, version="v2")
    version = ModelVersion(owner=alice, architecture="synthetic-mlp", version="v2")
    version.onnx_file.save("v2.onnx", ContentFile(other.read_bytes()))
    before = post(alice_api, two_face_jpeg).json()
    response = alice_api.post(f"/api/models/{version.pk}/activate/", {}, format="json")
    assert response.status_code == 200, response.content
    after = post(alice_api, two_face_jpeg).json()
    assert (before["model_version"], after["model_version"]) == ("default", "v2")
    assert after["faces"][0]["probabilities"] != before["faces"][0]["probabilities"]
    # bob did not choose it: he still gets the default model.
    assert post(bob_api, two_face_jpeg).json()["model_version"] == "default"


def test_a_running_server_serves_a_newly_activated_model_without_restart(served_model, live_asgi, alice, alice_api, two_face_jpeg):
    import http.client
    import json
    import uuid
    from urllib.parse import urlparse

    from django.core.files.base import ContentFile
    from rest_framework.authtoken.models import Token

    from inference.models import ModelVersion

    token = Token.objects.get_or_create(user=alice)[0].key
    port = urlparse(live_asgi.url).port
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.jpg\"\r\n\r\n").encode() \
        + two_face_jpeg + f"\r\n--{boundary}--\r\n".encode()

    def predict():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/api/predict/", body=body, headers={
            "Authorization": f"Token {token}", "Content-Type": f"multipart/form-data; boundary={boundary}"})
        try:
            response = conn.getresponse()
            assert response.status == 200
            return json.loads(response.read())
        finally:
            conn.close()

    before = predict()
    other = contract_model(served_model.parent / "v3.onnx", seed=7, version="v3")
    version = ModelVersion(owner=alice, architecture="synthetic-mlp", version="v3")
    version.onnx_file.save("v3.onnx", ContentFile(other.read_bytes()))
    assert alice_api.post(f"/api/models/{version.pk}/activate/", {}, format="json").status_code == 200
    after = predict()
    assert (before["model_version"], after["model_version"]) == ("default", "v3")
    assert after["faces"][0]["probabilities"] != before["faces"][0]["probabilities"]
