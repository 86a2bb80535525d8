"""A dataset written out as a zip or a FER2013 CSV reads back as the same faces, labels and splits."""
import numpy as np
import pytest

from fercore.classes import CLASSES
from fercore.exports import member_name, write_csv, write_zip
from fercore.readers import read_dataset


@pytest.fixture
def faces():
    rng = np.random.default_rng(5)
    n = 60
    pixels = rng.integers(0, 256, size=(n, 48, 48), dtype=np.uint8)
    labels = np.arange(n) % len(CLASSES)
    splits = np.array(["Training"] * 40 + ["PublicTest"] * 10 + ["PrivateTest"] * 10)
    return pixels, labels, splits


def as_set(pixels, labels, splits):
    """The faces as a multiset: the reader may list a zip's members in another order."""
    return sorted((face.tobytes(), int(label), str(split)) for face, label, split in zip(pixels, labels, splits))


def test_a_zip_export_reads_back_as_the_same_faces(tmp_path, faces):
    pixels, labels, splits = faces
    path = tmp_path / "export.zip"
    write_zip(path, pixels, labels, splits, [f"Training_{i}.jpg" for i in range(len(pixels))])

    back = read_dataset(path)

    assert as_set(back.pixels, back.labels, back.splits) == as_set(pixels, labels, splits)


def test_a_csv_export_reads_back_in_order(tmp_path, faces):
    pixels, labels, splits = faces
    path = tmp_path / "export.csv"
    write_csv(path, pixels, labels, splits)

    back = read_dataset(path)

    assert np.array_equal(back.pixels, pixels)
    assert np.array_equal(back.labels, labels)
    assert list(back.splits) == list(splits)


def test_member_names_keep_the_original_name_and_stay_unique():
    assert member_name(3, "train/happy/Training_42.jpg") == "000003_Training_42.png"
    assert member_name(4, "photo.jpg#1") == "000004_photo.png"
    assert member_name(5, "") == "000005.png"
    assert member_name(6, "line 17") == "000006_line_17.png"


def test_it_refuses_split_names_that_would_not_read_back(tmp_path, faces):
    pixels, labels, _ = faces
    with pytest.raises(ValueError, match="would not read back"):
        write_zip(tmp_path / "x.zip", pixels, labels, np.array(["mine"] * len(pixels)))
