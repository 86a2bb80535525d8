import numpy as np
import pytest
from sklearn import metrics as sk

from training_jobs.ml import CLASSES
from training_jobs.ml.calibration import calibration_report, fit_temperature
from training_jobs.ml.metrics import evaluate, softmax


@pytest.fixture(scope="module")
def predictions():
    """Fixed, imperfect predictions: 300 faces, every class present, ties in the scores."""
    rng = np.random.default_rng(7)
    y = rng.choice(7, size=300, p=[0.14, 0.02, 0.14, 0.25, 0.17, 0.11, 0.17])
    y[:7] = np.arange(7)
    logits = rng.normal(0, 1, (300, 7)) + 2.0 * np.eye(7)[y]
    probs = softmax(np.round(logits, 1))  # rounding creates tied scores
    return y, probs


def test_it_agrees_with_scikit_learn(predictions):
    y, probs = predictions
    pred = probs.argmax(1)
    m = evaluate(y, probs)
    labels = list(range(7))
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["macro_f1"] == pytest.approx(sk.f1_score(y, pred, average="macro", labels=labels, zero_division=0))
    precision, recall, f1, support = sk.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    cm = sk.confusion_matrix(y, pred, labels=labels)
    assert m["confusion_matrix"] == cm.tolist()
    for c, name in enumerate(CLASSES):
        row = m["per_class"][name]
        assert row["precision"] == pytest.approx(precision[c])
        assert row["recall"] == pytest.approx(recall[c])
        assert row["f1"] == pytest.approx(f1[c])
        assert row["support"] == support[c]
        tn = cm.sum() - cm[c].sum() - cm[:, c].sum() + cm[c, c]
        assert row["specificity"] == pytest.approx(tn / (tn + cm[:, c].sum() - cm[c, c]))
        onehot = (y == c).astype(int)
        assert m["roc"][name]["auc"] == pytest.approx(sk.roc_auc_score(onehot, probs[:, c]))
    assert m["macro_auc"] == pytest.approx(sk.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
    assert m["micro_auc"] == pytest.approx(sk.roc_auc_score(np.eye(7)[y], probs, average="micro"))
    assert np.allclose(m["confusion_matrix_normalized"], sk.confusion_matrix(y, pred, normalize="true"), atol=1e-5)
    assert m["nll"] == pytest.approx(sk.log_loss(y, probs, labels=labels))


def test_roc_curves_are_downsampled_but_keep_their_ends(predictions):
    y, probs = predictions
    m = evaluate(y, probs)
    for name in CLASSES:
        curve = m["roc"][name]
        assert 2 <= len(curve["fpr"]) == len(curve["tpr"]) <= 102
        assert (curve["fpr"][0], curve["tpr"][0]) == (0.0, 0.0)
        assert (curve["fpr"][-1], curve["tpr"][-1]) == (1.0, 1.0)
        assert all(np.diff(curve["fpr"]) >= 0)
    full_fpr, full_tpr, _ = sk.roc_curve((y == 3).astype(int), probs[:, 3])
    assert len(full_fpr) > 40  # the happy curve really had many points to keep


def test_a_class_missing_from_the_labels_has_no_auc_and_zero_scores():
    y = np.array([0, 0, 3, 3, 3, 6])
    probs = softmax(np.eye(7)[[0, 3, 3, 3, 6, 6]] * 3.0)
    m = evaluate(y, probs)
    assert m["roc"]["disgust"]["auc"] is None
    assert m["per_class"]["disgust"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "specificity": 1.0,
                                         "support": 0, "auc": None}
    assert m["macro_auc"] == pytest.approx(np.mean([sk.roc_auc_score(y == c, probs[:, c]) for c in (0, 3, 6)]))


def test_expected_calibration_error_of_known_cases():
    y = np.zeros(100, dtype=int)
    confident = np.tile([0.9, 0.1 / 6, 0.1 / 6, 0.1 / 6, 0.1 / 6, 0.1 / 6, 0.1 / 6], (100, 1))
    assert evaluate(y, confident)["ece"] == pytest.approx(0.1)  # 90% sure, always right
    wrong = confident.copy()
    y_wrong = np.r_[np.zeros(90, dtype=int), np.ones(10, dtype=int)]
    assert evaluate(y_wrong, wrong)["ece"] == pytest.approx(0.0, abs=1e-9)  # 90% sure, 90% right


def test_temperature_scaling_cools_an_overconfident_model():
    # Labels drawn from softmax(z) make z calibrated; a model that outputs 4z is overconfident by 4.
    rng = np.random.default_rng(11)
    z = rng.normal(0, 1.5, (4000, 7))
    p = softmax(z)
    y = np.array([rng.choice(7, p=row) for row in p])
    temperature = fit_temperature(4 * z, y)
    assert temperature == pytest.approx(4.0, rel=0.1)
    report = calibration_report(4 * z, y, temperature)
    assert report["ece_after"] < report["ece_before"] / 3 and report["nll_after"] < report["nll_before"]
