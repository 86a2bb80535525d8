"""The datasets service that stores ready, labeled faces through the import's own storage path."""
import numpy as np
import pytest

from fercore.classes import CLASSES
from ferweb.datasets.models import Dataset
from ferweb.datasets.selectors import dataset_arrays, dataset_face
from ferweb.datasets.services import dataset_create_from_faces


def faces(n, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 48, 48), dtype=np.uint8)


def test_ready_faces_become_a_dataset_like_an_import(alice, client):
    pixels = faces(5)
    pixels[4] = pixels[0]  # an exact duplicate across splits, as the quality report must notice
    dataset = dataset_create_from_faces(
        owner=alice, name="  Hand labeled  ", pixels=pixels, labels=[3, 3, 4, 6, 3],
        splits=["train", "train", "train", "train", "test"], source_names=[f"p{i}.jpg" for i in range(5)],
        source_name="Labeling set #1: party",
    )
    assert dataset.status == Dataset.Status.READY and dataset.progress == 100 and dataset.finished_at
    assert dataset.name == "Hand labeled" and dataset.source_format == "labeling"
    assert dataset.num_items == 5
    assert dataset.class_counts == {**{c: 0 for c in CLASSES}, "happy": 3, "sad": 1, "neutral": 1}
    assert dataset.split_counts == {"test": 1, "train": 4}
    assert dataset.report["quality"]["duplicates_across_splits"]["extra_copies"] == 1
    assert dataset.report["class_counts_by_split"]["test"]["happy"] == 1

    loaded, labels, splits, _ = dataset_arrays(dataset)
    assert np.array_equal(loaded, pixels) and labels.tolist() == [3, 3, 4, 6, 3]
    assert splits.tolist() == ["train", "train", "train", "train", "test"]
    assert np.array_equal(dataset_face(dataset, 2), pixels[2])
    assert dataset.mean_faces_path.exists()

    client.force_login(alice)
    page = client.get(f"/datasets/{dataset.pk}/")
    assert page.status_code == 200 and b"Hand labeled" in page.content


@pytest.mark.parametrize("change, message", [
    ({"pixels": np.zeros((2, 32, 32), np.uint8)}, "uint8 \\[N, 48, 48\\]"),
    ({"labels": [0, 7]}, "labels must be 0-6"),
    ({"splits": ["train", ""]}, "1-32 characters"),
    ({"source_names": ["one"]}, "same length"),
    ({"pixels": np.zeros((0, 48, 48), np.uint8), "labels": [], "splits": [], "source_names": []}, "at least one face"),
])
def test_bad_faces_are_refused_and_nothing_is_kept(alice, change, message):
    arguments = {"pixels": faces(2), "labels": [0, 1], "splits": ["train", "train"], "source_names": ["a", "b"]}
    with pytest.raises(ValueError, match=message):
        dataset_create_from_faces(owner=alice, name="bad", **{**arguments, **change})
    assert not Dataset.objects.exists()
