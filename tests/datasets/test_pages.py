"""The /datasets/ pages as the Django test client sees them (the browser test drives the JS)."""
import numpy as np
import pytest
from django.test import Client

from fercore.classes import CLASSES
from ferweb.datasets.models import Dataset

from .conftest import class_tree, encode, zip_bytes

pytestmark = pytest.mark.django_db


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def test_the_pages_need_a_login(client, alice):
    for url in ("/datasets/", "/datasets/1/"):
        response = client.get(url)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_list_offers_the_upload_form_and_lists_own_datasets_only(alice, bob, alice_api, upload):
    upload(alice_api, "mine", zip_bytes(class_tree(per_class=1)))
    html = logged_in(alice).get("/datasets/").content.decode()
    assert 'id="upload-form"' in html and 'type="file"' in html and 'name="drop_unknown_classes"' in html
    assert '<span class="muted">#' in html and "</span> mine</a>" in html and 'class="badge ready"' in html
    assert "mine" not in logged_in(bob).get("/datasets/").content.decode()


def test_the_dataset_page_shows_the_analysis(alice, bob, carol, alice_api, upload):
    files = class_tree(per_class=2, splits=("train", "test"))
    files["train/happy/blank.png"] = encode(np.zeros((48, 48), np.uint8))
    files["train/sad/broken.jpg"] = b"not a jpeg"
    pk = upload(alice_api, "analysed", zip_bytes(files)).json()["id"]
    response = logged_in(alice).get(f"/datasets/{pk}/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="class-chart"' in html
    assert '<tr data-split="test"><td>test</td><td class="num">14</td>' in html
    for name in CLASSES:
        assert f'<div class="sample-row" data-class="{name}">' in html
        assert f'/api/datasets/{pk}/mean/{name}.png' in html
    assert html.count(f'src="/api/datasets/{pk}/items/') >= 29  # 29 samples + the blank face
    assert 'data-finding="blank"' in html and "Blank or near-constant faces: <span class=\"finding-count\">1</span>" in html
    assert "<code>train/sad/broken.jpg</code> — not an image or corrupt" in html
    assert "&#x27;key&#x27;" not in html  # findings render their faces, not their dict
    assert logged_in(bob).get(f"/datasets/{pk}/").status_code == 404
    assert logged_in(carol).get(f"/datasets/{pk}/").status_code == 200


def test_a_failed_import_shows_its_error(alice, alice_api, upload):
    pk = upload(alice_api, "bad", b"emotion,pixels,Usage\n9,1 2,Training\n", filename="f.csv").json()["id"]
    assert Dataset.objects.get(pk=pk).status == "failed"
    html = logged_in(alice).get(f"/datasets/{pk}/").content.decode()
    assert "The import failed" in html
    assert "Line 2: emotion &#x27;9&#x27; is not a class: use 0-6 or a name" in html
