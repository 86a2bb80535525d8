import io
import zipfile

import cv2
import numpy as np
import pytest

from training_jobs.ml import CLASSES
from training_jobs.ml.data import DataError, TrainData, load_dataset_file, split_data

from .conftest import drawn_faces


def labelled(splits):
    n = len(splits)
    rng = np.random.default_rng(0)
    return TrainData(rng.integers(0, 255, (n, 48, 48), dtype=np.uint8), np.arange(n) % 7, np.array(splits))


def test_without_own_splits_validation_is_a_stratified_seeded_share_and_test_reuses_it():
    data = labelled(["train"] * 700)
    splits = split_data(data, validation_fraction=0.1, seed=3)
    assert len(splits.val) == 70 and len(splits.train) == 630
    assert np.bincount(data.labels[splits.val], minlength=7).tolist() == [10] * 7
    assert not set(splits.val) & set(splits.train)
    assert np.array_equal(splits.test, splits.val) and "validation" in splits.test_source
    assert splits.notes  # the result says the test split is the validation split
    again = split_data(data, validation_fraction=0.1, seed=3)
    other = split_data(data, validation_fraction=0.1, seed=4)
    assert np.array_equal(splits.val, again.val) and not np.array_equal(splits.val, other.val)


def test_the_datasets_own_splits_win():
    data = labelled(["Training"] * 50 + ["PublicTest"] * 20 + ["PrivateTest"] * 10)
    splits = split_data(data, validation_fraction=0.1, seed=0)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (50, 20, 10)
    assert splits.val_source == "PublicTest" and splits.test_source == "PrivateTest" and not splits.notes


def test_a_dataset_without_training_faces_is_refused():
    with pytest.raises(DataError, match="no training faces"):
        split_data(labelled(["test"] * 10))


def test_it_loads_a_zip_of_split_and_class_folders(tmp_path):
    pixels, labels = drawn_faces(2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for i, (face, label) in enumerate(zip(pixels, labels)):
            split = "train" if i % 2 == 0 else "test"
            archive.writestr(f"{split}/{CLASSES[label]}/Training_{i}.png", cv2.imencode(".png", face)[1].tobytes())
        archive.writestr("README.txt", "not a face")
    path = tmp_path / "faces.zip"
    path.write_bytes(buffer.getvalue())
    data = load_dataset_file(path)
    assert len(data) == 6 and sorted(set(data.splits)) == ["test", "train"]
    assert sorted(data.labels.tolist()) == sorted(labels.tolist())
    # PNG is lossless: every face comes back bit for bit, with its label.
    originals = {face.tobytes(): label for face, label in zip(pixels, labels)}
    assert {face.tobytes(): label for face, label in zip(data.pixels, data.labels)} == originals


def test_it_loads_a_fer2013_csv(tmp_path):
    pixels, labels = drawn_faces(1)
    rows = ["emotion,pixels,Usage"] + [
        f"{label},{' '.join(map(str, face.ravel()))},{usage}"
        for face, label, usage in zip(pixels, labels, ["Training", "PublicTest", "PrivateTest"])]
    path = tmp_path / "fer2013.csv"
    path.write_text("\n".join(rows))
    data = load_dataset_file(path)
    assert data.labels.tolist() == labels.tolist()
    assert data.splits.tolist() == ["Training", "PublicTest", "PrivateTest"]
    assert np.array_equal(data.pixels, pixels)


def test_labels_outside_the_seven_classes_are_refused():
    with pytest.raises(DataError, match="angry, disgust"):
        TrainData(np.zeros((1, 48, 48), np.uint8), np.array([7]), np.array(["train"]))
