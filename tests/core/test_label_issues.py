"""The label-error finder on a synthetic set with flips injected on purpose."""
import numpy as np
import pytest

from fercore.classes import CLASSES
from fercore.label_issues import find_label_issues, flip_labels, recall_at


def synthetic_predictions(n=1400, accuracy=0.8, seed=1):
    """True labels and the probabilities of a model that is right `accuracy` of the time,
    confident when right and unsure when wrong, as trained models are."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, len(CLASSES), size=n)
    probs = rng.dirichlet(np.ones(len(CLASSES)), size=n) * 0.3
    right = rng.random(n) < accuracy
    probs[np.arange(n), truth] += np.where(right, 0.7, 0.3)
    wrong = (truth + rng.integers(1, len(CLASSES), size=n)) % len(CLASSES)
    probs[np.arange(n)[~right], wrong[~right]] += 0.4
    return truth, probs / probs.sum(axis=1, keepdims=True)


def test_it_ranks_the_flipped_labels_first():
    truth, probs = synthetic_predictions()
    noisy, flipped = flip_labels(truth, 0.05, seed=3)

    findings = find_label_issues(noisy, probs)

    found, top = recall_at(findings, flipped, 0.05)
    assert top == len(flipped) == 70
    assert found >= 0.9 * len(flipped)
    flagged = {issue.index for issue in findings.issues}
    assert len(flagged & set(flipped.tolist())) >= 0.8 * len(flipped)


def test_it_suggests_the_true_label_for_most_flips():
    truth, probs = synthetic_predictions()
    noisy, flipped = flip_labels(truth, 0.05, seed=3)

    findings = find_label_issues(noisy, probs)

    by_index = {issue.index: issue for issue in findings.issues}
    restored = [i for i in flipped if i in by_index and by_index[i].suggested == truth[i]]
    assert len(restored) >= 0.7 * len(flipped)
    for issue in findings.issues:
        assert issue.given == noisy[issue.index] and issue.suggested != issue.given
        assert 0.0 <= issue.score <= 1.0
    scores = [issue.score for issue in findings.issues]
    assert scores == sorted(scores, reverse=True)


def test_clean_labels_from_a_good_model_raise_few_flags():
    truth, probs = synthetic_predictions(accuracy=0.97)

    findings = find_label_issues(truth, probs)

    assert len(findings.issues) <= 0.05 * len(truth)


def test_flips_are_seeded_and_always_change_the_class():
    labels = np.arange(700) % len(CLASSES)
    noisy, flipped = flip_labels(labels, 0.1, seed=7)
    again, flipped_again = flip_labels(labels, 0.1, seed=7)

    assert np.array_equal(flipped, flipped_again) and np.array_equal(noisy, again)
    assert len(flipped) == 70
    assert np.all(noisy[flipped] != labels[flipped])
    untouched = np.setdiff1d(np.arange(700), flipped)
    assert np.array_equal(noisy[untouched], labels[untouched])


def test_it_refuses_probabilities_of_the_wrong_shape():
    with pytest.raises(ValueError, match="expected probabilities"):
        find_label_issues(np.zeros(3, dtype=int), np.full((3, 5), 0.2))
    with pytest.raises(ValueError, match="labels must be"):
        find_label_issues(np.array([9]), np.full((1, 7), 1 / 7))


def test_an_empty_set_has_no_issues():
    findings = find_label_issues(np.zeros(0, dtype=int), np.zeros((0, len(CLASSES))))
    assert findings.issues == [] and len(findings.scores) == 0
