"""read_dataset on its own (no Django): the entry point evaluate_model uses for folder trees, zips and CSVs."""
import os
import time
import zipfile

import cv2
import numpy as np
import pytest

from fercore.archive import Limits
from fercore.classes import CLASSES
from fercore.images import decode_image
from fercore.preprocess import resize_face
from fercore.readers import DatasetError, read_dataset
from inference.synthetic import png_bomb

from .conftest import class_tree, encode, fer_csv, make_zip


def write_tree(root, files):
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_it_reads_a_directory_tree_with_split_folders_and_skips_symlinks(tmp_path):
    root = write_tree(tmp_path / "data", class_tree(per_class=2, splits=("train", "val")))
    os.symlink("/etc/passwd", root / "train" / "happy" / "link.png")
    (root / "train" / ".DS_Store").write_bytes(b"junk")
    result = read_dataset(root)
    assert result.source_format == "directory"
    assert result.pixels.shape == (28, 48, 48) and result.pixels.dtype == np.uint8
    assert result.labels.dtype == np.int64
    assert np.bincount(result.labels, minlength=7).tolist() == [4] * 7
    assert sorted(set(result.splits.tolist())) == ["train", "val"]
    assert result.skipped == [{"name": "train/happy/link.png", "reason": "symbolic link, not followed"}]


def test_it_reads_a_csv_and_a_zip_holding_only_that_csv_the_same_way(tmp_path):
    text = fer_csv(rows=7, usages=("Training",))
    (tmp_path / "fer2013.csv").write_text(text)
    with zipfile.ZipFile(tmp_path / "fer2013.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("fer2013/fer2013.csv", text)
    plain, zipped = read_dataset(tmp_path / "fer2013.csv"), read_dataset(tmp_path / "fer2013.zip")
    assert np.array_equal(plain.pixels, zipped.pixels) and np.array_equal(plain.labels, zipped.labels)
    assert plain.labels.tolist() == list(range(7))
    assert set(plain.splits.tolist()) == {"Training"}
    assert plain.source_names[0] == "line 2"


def test_a_csv_without_usage_goes_to_train_and_accepts_class_names(tmp_path):
    pixels = " ".join(["128"] * 2304)
    (tmp_path / "f.csv").write_text(f"pixels,emotion\n\"{pixels}\",Happiness\n\"{pixels}\",4\n")
    result = read_dataset(tmp_path / "f.csv")
    assert result.labels.tolist() == [CLASSES.index("happy"), 4]
    assert result.splits.tolist() == ["train", "train"]


def test_a_split_folder_without_class_folders_is_unlabeled(tmp_path):
    files = {f"train/{name.split('/')[-1]}": data for name, data in class_tree(per_class=1).items()}
    with pytest.raises(DatasetError) as error:
        read_dataset(make_zip(tmp_path / "x.zip", files))
    assert error.value.code == "unlabeled_images"


def test_limits_are_arguments(tmp_path):
    archive = make_zip(tmp_path / "x.zip", class_tree(per_class=1))
    with pytest.raises(DatasetError) as error:
        read_dataset(archive, limits=Limits(max_members=3))
    assert error.value.message == "Refused: the zip holds 7 files; the limit is 3."
    assert len(read_dataset(archive, limits=Limits(max_members=7))) == 7


def test_progress_is_reported_up_to_the_end(tmp_path):
    seen = []
    read_dataset(make_zip(tmp_path / "x.zip", class_tree(per_class=1)), progress=seen.append)
    assert seen[-1] == 1.0 and all(0 <= value <= 1 for value in seen)


def test_a_csv_with_a_byte_order_mark_and_windows_line_ends_reads(tmp_path):
    pixels = " ".join(["90"] * 2304)
    (tmp_path / "f.csv").write_bytes(f"\ufeffemotion,pixels,Usage\r\n3,{pixels},PrivateTest\r\n".encode("utf-8"))
    result = read_dataset(tmp_path / "f.csv")
    assert result.labels.tolist() == [3] and result.splits.tolist() == ["PrivateTest"]


def test_a_pixel_that_is_not_an_integer_is_named_with_its_line(tmp_path):
    pixels = " ".join(["90"] * 2303 + ["9O"])
    (tmp_path / "f.csv").write_text(f"emotion,pixels\n3,{' '.join(['1'] * 2304)}\n3,{pixels}\n")
    with pytest.raises(DatasetError) as error:
        read_dataset(tmp_path / "f.csv")
    assert error.value.message == "Line 3: pixels must be integers from 0 to 255, found '9O'."


def test_other_files_beside_the_images_are_skipped_not_taken_for_classes(tmp_path):
    files = {f"fer/{name}": data for name, data in class_tree(per_class=1, splits=("train",)).items()}
    files.update({"fer/README.md": b"# faces", "LICENSE.txt": b"CC", "fer/train/labels.json": b"{}"})
    result = read_dataset(make_zip(tmp_path / "x.zip", files))
    assert len(result) == 7 and set(result.splits.tolist()) == {"train"}
    assert sorted(m["name"] for m in result.skipped) == ["LICENSE.txt", "fer/README.md", "fer/train/labels.json"]
    with pytest.raises(DatasetError) as error:
        read_dataset(make_zip(tmp_path / "y.zip", {"notes.txt": b"x", "data.json": b"{}"}))
    assert error.value.message == "No images found, only other files (data.json, notes.txt)."


def test_a_pixel_bomb_is_skipped_from_its_header_without_decoding(tmp_path):
    bomb = encode(np.zeros((7000, 8000), np.uint8))
    assert len(bomb) < 200 * 1024  # tiny on disk, 56 megapixels once decoded
    files = {**class_tree(per_class=1, classes=("happy",)), "happy/bomb.png": bomb}
    result = read_dataset(make_zip(tmp_path / "x.zip", files))
    assert len(result) == 1
    assert result.skipped == [{
        "name": "happy/bomb.png",
        "reason": "The image is 8,000 x 7,000 pixels, over the limit of 50,000,000 pixels: scale it down and try again.",
    }]


def test_decompression_bombs_are_refused_in_zips_and_folders_in_well_under_a_second(tmp_path):
    bomb = png_bomb(30000, 30000)  # 110 KB on disk, 900 MB once decoded
    files = {**class_tree(per_class=1, classes=("happy", "sad")), "happy/bomb.png": bomb, "sad/bomb2.png": bomb}
    for source in (make_zip(tmp_path / "x.zip", files), write_tree(tmp_path / "tree", files)):
        started = time.perf_counter()
        result = read_dataset(source)
        assert time.perf_counter() - started < 1.0  # decoding the two would take seconds and 1.8 GB
        assert len(result) == 2
        assert sorted(m["name"] for m in result.skipped) == ["happy/bomb.png", "sad/bomb2.png"]
        assert {m["reason"] for m in result.skipped} == {
            "The image has more than 50,000,000 pixels; scale it down and try again."
        }


def test_the_pixel_limit_is_one_number_for_every_size_of_file(tmp_path):
    """Small files are checked too: a 2 KB PNG can claim more pixels than the limit."""
    files = {**class_tree(per_class=1, classes=("happy",)), "happy/wide.png": png_bomb(12000, 100)}
    result = read_dataset(make_zip(tmp_path / "x.zip", files), limits=Limits(max_image_pixels=1_000_000))
    assert len(result) == 1 and result.skipped[0]["name"] == "happy/wide.png"
    assert "12,000 x 100 pixels, over the limit of 1,000,000" in result.skipped[0]["reason"]


def test_import_decodes_exactly_as_serving_does(tmp_path):
    """One decoder: the faces a dataset is trained on are the pixels the served model sees."""
    rng = np.random.default_rng(3)
    colour = cv2.GaussianBlur(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8), (0, 0), 2)
    sixteen_bit = (colour[:, :, 1].astype(np.uint16) * 257)
    files = {"happy/c.png": encode(colour), "happy/c.jpg": encode(colour, ".jpg"), "happy/g.png": encode(sixteen_bit)}
    result = read_dataset(make_zip(tmp_path / "x.zip", files))
    for name, face in zip(result.source_names, result.pixels):
        served = resize_face(decode_image(files[name], max_pixels=50_000_000))
        assert np.array_equal(face, served), name
    assert result.pixels[result.source_names.index("happy/g.png")].mean() < 200  # scaled, not clipped to white
