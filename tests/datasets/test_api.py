"""POST/GET/DELETE /api/datasets/: every import format and every bad input, as a client sees them."""
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from fercore.classes import CLASSES
from ferweb.datasets.models import Dataset, DatasetItem
from ferweb.datasets.selectors import dataset_arrays

from .conftest import class_tree, draw_face, encode, fer_csv, photo, zip_bytes

pytestmark = pytest.mark.django_db


def detail(client, pk):
    response = client.get(f"/api/datasets/{pk}/")
    assert response.status_code == 200
    return response.json()


def assert_nothing_kept(settings):
    assert Dataset.objects.count() == 0
    assert DatasetItem.objects.count() == 0
    uploads = Path(settings.MEDIA_ROOT) / "uploads"
    assert not uploads.exists() or not any(uploads.iterdir())


# ---------------------------------------------------------------- formats


def test_it_imports_a_zip_of_class_folders_without_split_folders(alice_api, upload):
    response = upload(alice_api, "drawn", zip_bytes(class_tree(per_class=3)))
    assert response.status_code == 201
    assert set(response.json()) == {"id", "status"}
    data = detail(alice_api, response.json()["id"])
    assert data["status"] == "ready", data["human_readable_error"]
    assert data["progress"] == 100
    assert data["num_items"] == 21
    assert data["class_counts"] == {name: 3 for name in CLASSES}
    assert data["split_counts"] == {"train": 21}
    assert data["error"] == "" and data["human_readable_error"] == ""
    assert data["report"]["source_format"] == "zip"
    assert all(len(data["samples"][name]) == 3 for name in CLASSES)


def test_it_keeps_split_folders_as_given_below_a_wrapping_folder(alice_api, upload):
    files = class_tree(per_class=2, splits=("train", "test", "PublicTest"))
    files = {f"fer2013/{name}": data for name, data in files.items()}
    data = detail(alice_api, upload(alice_api, "split", zip_bytes(files)).json()["id"])
    assert data["status"] == "ready", data["human_readable_error"]
    assert data["split_counts"] == {"PublicTest": 14, "test": 14, "train": 14}
    assert data["report"]["class_counts_by_split"]["test"] == {name: 2 for name in CLASSES}

    dataset = Dataset.objects.get()
    pixels, labels, splits, ids = dataset_arrays(dataset)
    assert pixels.shape == (42, 48, 48) and pixels.dtype == np.uint8
    assert labels.dtype == np.int64 and sorted(set(splits)) == ["PublicTest", "test", "train"]
    assert len(ids) == 42


def test_it_maps_class_synonyms_plurals_and_case(alice_api, upload):
    names = ["Anger", "disgusted", "FEAR", "happiness", "sadness", "surprised", "3_neutral"]
    files = {}
    for folder, canonical in zip(names, CLASSES):
        for i in range(2):
            files[f"{folder}/{i}.png"] = encode(draw_face(48, seed=hash((folder, i)) % 1000))
    data = detail(alice_api, upload(alice_api, "synonyms", zip_bytes(files)).json()["id"])
    assert data["class_counts"] == {name: 2 for name in CLASSES}


def test_it_imports_the_fer2013_csv_with_usage_as_split(alice_api, upload):
    response = upload(alice_api, "csv", fer_csv(rows=14).encode(), filename="fer2013.csv")
    assert response.status_code == 201
    data = detail(alice_api, response.json()["id"])
    assert data["status"] == "ready", data["human_readable_error"]
    assert data["class_counts"] == {name: 2 for name in CLASSES}
    assert data["split_counts"] == {"PublicTest": 7, "Training": 7}
    pixels, labels, _, _ = dataset_arrays(Dataset.objects.get())
    first = fer_csv(rows=1).splitlines()[1].split(",")[1]
    assert pixels[0].ravel().tolist() == [int(v) for v in first.split()]
    assert labels[:3].tolist() == [0, 1, 2]


def test_it_converts_colour_images_of_other_sizes_to_48x48_gray(alice_api, upload):
    colour = cv2.cvtColor(draw_face(80, seed=1), cv2.COLOR_GRAY2BGR)
    colour[..., 2] = 255  # strongly red: the gray conversion must still give a face
    files = {
        "happy/big.png": encode(colour),
        "happy/wide.bmp": encode(cv2.resize(draw_face(64, seed=2), (90, 60)), ".bmp"),
        "sad/small.jpg": encode(draw_face(32, seed=3), ".jpg"),
    }
    data = detail(alice_api, upload(alice_api, "sizes", zip_bytes(files)).json()["id"])
    assert data["num_items"] == 3
    pixels, _, _, _ = dataset_arrays(Dataset.objects.get())
    assert pixels.shape == (3, 48, 48)
    assert pixels.std(axis=(1, 2)).min() > 10  # real content, not blank


def test_it_finds_every_face_in_a_photo_and_reports_photos_without_one(alice_api, upload):
    blank_photo = encode(np.full((480, 640, 3), 128, np.uint8), ".jpg")
    files = {"happy/two_people.jpg": photo(faces=2, seed=1), "sad/one.jpg": photo(faces=1, seed=2),
             "sad/wall.jpg": blank_photo}
    data = detail(alice_api, upload(alice_api, "photos", zip_bytes(files)).json()["id"])
    assert data["status"] == "ready", data["human_readable_error"]
    assert data["class_counts"]["happy"] == 2
    assert data["class_counts"]["sad"] == 1
    assert data["report"]["faces_detected"] == 3
    assert data["report"]["no_face"] == {"count": 1, "members": [{"name": "sad/wall.jpg", "reason": "no face found"}]}
    names = sorted(DatasetItem.objects.values_list("source_name", flat=True))
    assert names == ["happy/two_people.jpg#1", "happy/two_people.jpg#2", "sad/one.jpg#1"]


def test_it_skips_and_lists_corrupt_and_non_image_members_and_imports_the_rest(alice_api, upload):
    files = class_tree(per_class=2)
    files["happy/broken.jpg"] = encode(draw_face(48), ".jpg")[:100]
    files["sad/notes.txt"] = b"these are not pixels"
    data = detail(alice_api, upload(alice_api, "partly broken", zip_bytes(files)).json()["id"])
    assert data["status"] == "ready"
    assert data["num_items"] == 14
    assert data["report"]["skipped"]["count"] == 2
    assert {m["name"] for m in data["report"]["skipped"]["members"]} == {"happy/broken.jpg", "sad/notes.txt"}


def test_a_decompression_bomb_member_is_refused_from_its_header_and_the_rest_imported(alice_api, upload):
    from inference.synthetic import png_bomb

    archive = zip_bytes({**class_tree(per_class=2), "happy/bomb.png": png_bomb(30000, 30000)})  # 900 MB decoded
    started = time.perf_counter()
    data = detail(alice_api, upload(alice_api, "with a bomb", archive).json()["id"])
    assert time.perf_counter() - started < 5
    assert data["status"] == "ready" and data["num_items"] == 14
    assert data["report"]["skipped"]["members"] == [
        {"name": "happy/bomb.png", "reason": "The image has more than 50,000,000 pixels; scale it down and try again."}
    ]


def test_it_reports_blank_faces_and_duplicates_within_and_across_splits(alice_api, upload):
    files = class_tree(per_class=2, splits=("train", "test"))
    files["train/happy/blank.png"] = encode(np.full((48, 48), 7, np.uint8))
    same = encode(draw_face(48, seed=999))
    files["train/sad/a.png"] = same
    files["train/sad/b.png"] = same
    files["test/sad/c.png"] = encode(draw_face(48, seed=777))
    files["train/fear/c.png"] = encode(draw_face(48, seed=777))
    data = detail(alice_api, upload(alice_api, "quality", zip_bytes(files)).json()["id"])
    quality = data["report"]["quality"]
    assert quality["blank"]["count"] == 1
    assert quality["duplicates_within_split"]["groups"] == 1
    assert quality["duplicates_within_split"]["extra_copies"] == 1
    assert quality["duplicates_across_splits"]["groups"] == 1
    blank_index = quality["blank"]["items"][0]
    assert DatasetItem.objects.get(index=blank_index).source_name == "train/happy/blank.png"
    assert DatasetItem.objects.filter(flags__contains="cross_split_duplicate").count() == 2
    assert DatasetItem.objects.filter(flags="duplicate").count() == 2


def test_drop_unknown_classes_leaves_those_folders_out(alice_api, upload):
    files = {**class_tree(per_class=1), **class_tree(per_class=2, classes=("contempt",), seed=5)}
    response = upload(alice_api, "ck+", zip_bytes(files), drop_unknown_classes="true")
    assert response.status_code == 201
    data = detail(alice_api, response.json()["id"])
    assert data["num_items"] == 7
    assert data["report"]["dropped_classes"] == {"contempt": 2}


# ---------------------------------------------------------------- bad input: refused at upload, nothing kept

VALID = ", ".join(CLASSES)


def test_it_refuses_unknown_class_names_listing_them_and_the_valid_names(alice_api, upload, settings):
    files = {**class_tree(per_class=1), **class_tree(per_class=1, classes=("contempt", "smirk"), seed=5)}
    response = upload(alice_api, "ck+", zip_bytes(files))
    assert response.status_code == 400
    assert response.json() == {
        "code": "unknown_classes",
        "detail": f"Unknown class folders: contempt, smirk. Valid class names: {VALID} (synonyms such as anger, "
                  "happiness, sadness and surprised work too). Rename the folders, or tick \"drop unknown "
                  "classes\" to leave them out.",
    }
    assert_nothing_kept(settings)


def test_it_refuses_photos_that_are_in_no_class_folder(alice_api, upload, settings):
    files = {"IMG_1.jpg": photo(1, seed=1), "IMG_2.jpg": photo(1, seed=2)}
    response = upload(alice_api, "holiday", zip_bytes(files))
    assert response.status_code == 400
    assert response.json()["code"] == "unlabeled_images"
    assert response.json()["detail"] == (
        "The 2 images are not in class folders (IMG_1.jpg, IMG_2.jpg), so they have no labels. Put each image in a "
        f"folder named after its class ({VALID}), optionally inside split folders (train/, test/, val/), or label "
        "the photos on the Labeling page first."
    )
    assert_nothing_kept(settings)


@pytest.mark.parametrize(
    "data, filename, code, message",
    [
        (encode(draw_face(48)), "face.png", "unsupported_format",
         "This file is neither a zip nor a CSV. Upload a zip of class folders (angry/, happy/... optionally inside "
         "train/ and test/) or the FER2013 CSV (emotion,pixels,Usage)."),
        (b"", "empty.zip", "empty_archive", "The uploaded file is empty."),
        (zip_bytes({}), "empty.zip", "empty_archive", "The zip is empty: it holds no files."),
        (zip_bytes({"__MACOSX/._x": b"x", ".DS_Store": b"x"}), "hidden.zip", "empty_archive",
         "The zip holds no images (only hidden or system files)."),
        (zip_bytes({"happy/../../etc/cron.d/evil": b"x"}), "traversal.zip", "unsafe_path",
         "Refused: the zip member 'happy/../../etc/cron.d/evil' has a path that leaves the archive (../)."),
        (zip_bytes({"/etc/passwd": b"x"}), "absolute.zip", "unsafe_path",
         "Refused: the zip member '/etc/passwd' has an absolute path."),
        (zip_bytes({"happy/a.png": encode(draw_face())}, symlinks={"happy/link.png": "/etc/passwd"}), "link.zip",
         "symlink", "Refused: the zip member 'happy/link.png' is a symbolic link."),
        ("emotion,pixel\n0,1 2 3\n".encode(), "bad.csv", "csv_columns",
         "Line 1: expected the FER2013 columns emotion,pixels (and optionally Usage), found emotion,pixel."),
    ],
    ids=["not-zip-or-csv", "empty-file", "empty-zip", "only-hidden-files", "path-traversal", "absolute-path",
         "symlink", "csv-wrong-columns"],
)
def test_it_refuses_bad_uploads_with_a_clear_message(alice_api, upload, settings, data, filename, code, message):
    response = upload(alice_api, "bad", data, filename=filename)
    assert response.status_code == 400
    assert response.json() == {"code": code, "detail": message}
    assert_nothing_kept(settings)


def test_it_refuses_a_corrupt_zip(alice_api, upload, settings):
    data = zip_bytes(class_tree(per_class=2))
    response = upload(alice_api, "cut", data[: len(data) // 2], filename="cut.zip")
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "corrupt_zip"
    assert body["detail"].startswith("The zip file is damaged and cannot be opened (")
    assert_nothing_kept(settings)


def test_it_refuses_zip_bombs_from_the_central_directory(alice_api, upload, settings):
    settings.FERWEB_MAX_ARCHIVE_MEMBERS = 10
    response = upload(alice_api, "many", zip_bytes(class_tree(per_class=2)))
    assert response.status_code == 400
    assert response.json() == {"code": "too_many_members",
                               "detail": "Refused: the zip holds 14 files; the limit is 10."}

    settings.FERWEB_MAX_ARCHIVE_MEMBERS = 1000
    settings.FERWEB_MAX_ARCHIVE_UNCOMPRESSED_BYTES = 2 * 1024 * 1024
    bomb = zip_bytes({"happy/a.png": bytes(3 * 1024 * 1024)})
    response = upload(alice_api, "big", bomb)
    assert response.status_code == 400
    assert response.json() == {"code": "too_large_uncompressed",
                               "detail": "Refused: the zip unpacks to 3 MB; the limit is 2 MB."}

    settings.FERWEB_MAX_ARCHIVE_UNCOMPRESSED_BYTES = 100 * 1024 * 1024
    response = upload(alice_api, "ratio", zip_bytes({"happy/a.png": bytes(8 * 1024 * 1024)}))
    assert response.status_code == 400
    assert response.json()["code"] == "compression_ratio"
    assert "expands" in response.json()["detail"] and "the limit is 200 (this looks like a zip bomb)" in response.json()["detail"]
    assert_nothing_kept(settings)


def test_it_asks_for_a_file(alice_api):
    response = alice_api.post("/api/datasets/", {"name": "nothing"}, format="multipart")
    assert response.status_code == 400
    assert response.json()["fields"] == {"file": ["No file was submitted."]}
    assert response.json()["code"] == "invalid"


# ---------------------------------------------------------------- bad input found during the import


def test_a_csv_with_a_bad_pixel_row_fails_with_its_line_number_and_keeps_nothing(alice_api, upload, settings):
    lines = fer_csv(rows=4).splitlines()
    lines[3] = "2,12 34 56,Training"
    response = upload(alice_api, "bad row", ("\n".join(lines) + "\n").encode(), filename="fer2013.csv")
    assert response.status_code == 201
    data = detail(alice_api, response.json()["id"])
    assert data["status"] == "failed"
    assert data["error"] == "csv_row"
    assert data["human_readable_error"] == (
        "Line 4: pixels must be 2304 integers (48x48) separated by spaces, found 3 values."
    )
    dataset = Dataset.objects.get()
    assert dataset.items.count() == 0 and data["num_items"] == 0
    assert not dataset.storage_dir.exists()
    assert not any((Path(settings.MEDIA_ROOT) / "uploads").iterdir())


def test_a_csv_with_an_out_of_range_pixel_fails_with_its_line_number(alice_api, upload):
    lines = fer_csv(rows=3).splitlines()
    lines[2] = "1," + " ".join(["300"] * 2304) + ",Training"
    data = detail(alice_api, upload(alice_api, "range", "\n".join(lines).encode(), filename="f.csv").json()["id"])
    assert data["status"] == "failed"
    assert data["human_readable_error"] == "Line 3: pixels must be integers from 0 to 255."


def test_a_zip_of_nothing_but_broken_images_fails_with_the_reasons(alice_api, upload):
    files = {"happy/a.jpg": b"\xff\xd8\xff broken", "sad/b.png": b"\x89PNG nope"}
    data = detail(alice_api, upload(alice_api, "broken", zip_bytes(files)).json()["id"])
    assert data["status"] == "failed"
    assert data["error"] == "no_faces"
    assert data["human_readable_error"] == (
        "Nothing could be imported: 2 files were not readable images and 0 photos had no face. For example "
        "happy/a.jpg: not an image or corrupt; sad/b.png: not an image or corrupt."
    )


# ---------------------------------------------------------------- permissions, thumbnails, delete


@pytest.fixture
def alices_dataset(alice_api, upload):
    response = upload(alice_api, "alice's faces", zip_bytes(class_tree(per_class=2)))
    return Dataset.objects.get(id=response.json()["id"])


def test_other_users_see_nothing_of_a_dataset_and_staff_see_it(alices_dataset, alice_api, bob_api, carol_api, anon_api):
    pk = alices_dataset.pk
    assert [d["id"] for d in alice_api.get("/api/datasets/").json()] == [pk]
    assert bob_api.get("/api/datasets/").json() == []
    assert [d["id"] for d in carol_api.get("/api/datasets/").json()] == [pk]
    for url in (f"/api/datasets/{pk}/", f"/api/datasets/{pk}/items/0.png", f"/api/datasets/{pk}/mean/happy.png"):
        assert bob_api.get(url).status_code == 404, url
        assert carol_api.get(url).status_code == 200, url
        assert anon_api.get(url).status_code == 401, url
    assert bob_api.delete(f"/api/datasets/{pk}/").status_code == 404
    assert anon_api.get("/api/datasets/").status_code == 401
    assert Dataset.objects.filter(pk=pk).exists()


def test_thumbnails_are_the_stored_48x48_faces(alices_dataset, alice_api):
    response = alice_api.get(f"/api/datasets/{alices_dataset.pk}/items/3.png")
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    face = cv2.imdecode(np.frombuffer(response.content, np.uint8), cv2.IMREAD_UNCHANGED)
    pixels, _, _, _ = dataset_arrays(alices_dataset)
    assert np.array_equal(face, pixels[3])
    assert alice_api.get(f"/api/datasets/{alices_dataset.pk}/items/999.png").status_code == 404
    mean = alice_api.get(f"/api/datasets/{alices_dataset.pk}/mean/happy.png")
    assert cv2.imdecode(np.frombuffer(mean.content, np.uint8), cv2.IMREAD_UNCHANGED).shape == (48, 48)
    response = alice_api.get(f"/api/datasets/{alices_dataset.pk}/mean/contempt.png")
    assert response.status_code == 404


def test_delete_removes_the_dataset_its_items_and_files_once_no_run_names_it(
        alices_dataset, alice_api, django_capture_on_commit_callbacks):
    """Locked by a run that was deleted since: nothing keeps it (runs that still name it: tests/test_deletion.py)."""
    from ferweb.datasets.services import dataset_lock

    pk, storage = alices_dataset.pk, alices_dataset.storage_dir
    assert (storage / "pixels.npy").exists()
    dataset_lock(dataset=alices_dataset)
    with django_capture_on_commit_callbacks(execute=True):
        assert alice_api.delete(f"/api/datasets/{pk}/").status_code == 204
    assert not Dataset.objects.filter(pk=pk).exists() and DatasetItem.objects.count() == 0
    assert not storage.exists()


def test_the_openapi_schema_lists_the_dataset_routes(alice_api):
    schema = alice_api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    assert "/api/datasets/" in schema["paths"] and "/api/datasets/{id}/" in schema["paths"]


def _file(data: bytes, name: str):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile(name, data)
