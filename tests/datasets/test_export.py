"""GET /api/datasets/{id}/export.zip and export.csv: a dataset downloads as a zip of split/class folders or a FER2013
CSV, and importing either gives back the same faces, labels and splits."""
import io
import zipfile

import numpy as np
import pytest

from ferweb.datasets.models import Dataset, DatasetItem
from ferweb.datasets import services
from ferweb.datasets.selectors import dataset_arrays

from .conftest import class_tree, fer_csv, zip_bytes

pytestmark = pytest.mark.django_db


def faces_of(pk):
    """The dataset's faces as a multiset of (pixels, label, split): order may differ after a round trip."""
    pixels, labels, splits, _ids = dataset_arrays(Dataset.objects.get(pk=pk))
    return sorted((face.tobytes(), int(label), str(split)) for face, label, split in zip(pixels, labels, splits))


def download(client, pk, export_format):
    response = client.get(f"/api/datasets/{pk}/export.{export_format}")
    assert response.status_code == 200, response.content
    return b"".join(response.streaming_content), response


def test_a_zip_export_imports_back_as_the_same_faces_labels_and_splits(alice_api, upload):
    original = upload(alice_api, "drawn", zip_bytes(class_tree(per_class=2, splits=("train", "test")))).json()["id"]

    data, response = download(alice_api, original, "zip")

    assert response["Content-Type"] == "application/zip"
    assert f'filename="drawn-{original}-v1.zip"' in response["Content-Disposition"]
    members = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert any(name.startswith("train/happy/") and name.endswith(".png") for name in members)
    again = upload(alice_api, "drawn again", data, filename="export.zip").json()["id"]
    assert Dataset.objects.get(pk=again).status == "ready"
    assert faces_of(again) == faces_of(original)


def test_a_csv_export_imports_back_in_the_same_order(alice_api, upload):
    original = upload(alice_api, "csv", fer_csv(rows=21).encode(), filename="fer2013.csv").json()["id"]

    data, response = download(alice_api, original, "csv")

    assert response["Content-Type"] == "text/csv"
    assert data.startswith(b"emotion,pixels,Usage\r\n")
    again = upload(alice_api, "csv again", data, filename="again.csv").json()["id"]
    first, second = (dataset_arrays(Dataset.objects.get(pk=pk)) for pk in (original, again))
    for a, b in zip(first[:3], second[:3]):
        assert np.array_equal(a, b)


def test_excluded_faces_are_left_out_of_the_export(alice_api, upload):
    pk = upload(alice_api, "drawn", zip_bytes(class_tree(per_class=2))).json()["id"]
    services.dataset_items_update(items=DatasetItem.objects.filter(dataset_id=pk, index=0), excluded=True)

    data, _ = download(alice_api, pk, "csv")

    assert data.count(b"\n") == 1 + DatasetItem.objects.filter(dataset_id=pk).count() - 1


def test_another_users_dataset_is_not_found(alice_api, bob_api, upload):
    pk = upload(alice_api, "drawn", zip_bytes(class_tree(per_class=1))).json()["id"]

    assert bob_api.get(f"/api/datasets/{pk}/export.zip").status_code == 404
    assert bob_api.get(f"/api/datasets/{pk}/export.csv").status_code == 404


def test_the_dataset_page_offers_both_downloads(client, alice, alice_api, upload):
    pk = upload(alice_api, "drawn", zip_bytes(class_tree(per_class=1))).json()["id"]
    client.force_login(alice)

    page = client.get(f"/datasets/{pk}/").content.decode()

    assert f'href="/api/datasets/{pk}/export.zip"' in page and f'href="/api/datasets/{pk}/export.csv"' in page
    assert client.get(f"/api/datasets/{pk}/export.zip").status_code == 200
