"""The labeling pages: rendered by Django for each role, and driven in headless Chromium."""
import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from fercore.classes import CLASSES
from ferweb.labeling import services
from ferweb.labeling.models import LabelingFace

from ..conftest import signup


@pytest.fixture
def processed_set(alice, model_file, photos):
    files = [SimpleUploadedFile(name, data) for name, (data, _, _) in photos.items()]
    labeling_set = services.labeling_set_create(owner=alice, name="Family album", uploads=files)
    services.labeling_jobs.claim(labeling_set.pk, worker="test@host")
    return services.labeling_process(set_id=labeling_set.pk)


def test_the_list_and_review_pages_show_a_set_to_its_owner_only(client, alice, bob, carol, processed_set):
    client.force_login(alice)
    listing = client.get("/labeling/")
    assert listing.status_code == 200
    assert f'href="/labeling/{processed_set.pk}/"'.encode() in listing.content and b"Family album" in listing.content
    assert b'id="labeling-form"' in listing.content
    assert b'<td class="num">5/5</td>' in listing.content and b'<td class="num">0/4</td>' in listing.content

    page = client.get(f"/labeling/{processed_set.pk}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert len(re.findall(r'class="lface pending"', html)) == 4
    assert html.count('data-label="happy"') == 4 and html.count('data-action="skip"') == 4
    assert "notes.txt" in html and "nothing.jpg" in html  # the report lists what gave no face
    assert 'id="confirmed-chart"' in html and 'id="dataset-form"' in html

    face = processed_set.faces.first()
    services.labeling_face_update(face=face, label="fear")
    confirmed = client.get(f"/labeling/{processed_set.pk}/?status=confirmed").content.decode()
    assert len(re.findall(r'class="lface confirmed"', confirmed)) == 1 and 'data-face-label="fear"' in confirmed
    assert 'data-count="confirmed">1<' in confirmed

    client.force_login(bob)
    assert client.get(f"/labeling/{processed_set.pk}/").status_code == 404
    assert b"Family album" not in client.get("/labeling/").content
    client.force_login(carol)
    assert client.get(f"/labeling/{processed_set.pk}/").status_code == 200
    client.logout()
    assert client.get("/labeling/").status_code == 302


@pytest.mark.browser
def test_a_user_uploads_a_photo_corrects_labels_and_creates_a_dataset(served_model, live_asgi, page, tmp_path, photos):
    signup(page, live_asgi.url, "lena")
    photo = tmp_path / "two.png"
    photo.write_bytes(photos["two.png"][0])
    page.goto(f"{live_asgi.url}/labeling/")
    page.fill("#id_name", "Holiday")
    page.set_input_files("#id_files", str(photo))
    page.click("#labeling-upload-button")
    page.wait_for_url(re.compile(r".*/labeling/\d+/$"), timeout=60_000)
    cards = page.locator("#face-grid .lface")
    assert cards.count() == 2
    assert all(cards.nth(i).get_attribute("data-proposed") in CLASSES for i in range(2))

    # Correct the first face with a click, label the second with the keyboard.
    first_proposal = cards.nth(0).get_attribute("data-proposed")
    correction = next(name for name in CLASSES if name != first_proposal)
    cards.nth(0).locator(f"button[data-label={correction}]").click()
    page.wait_for_function(
        f"document.querySelector('#face-grid .lface .decision').dataset.faceLabel === '{correction}'"
    )
    cards.nth(0).focus()
    page.keyboard.press("ArrowRight")
    assert page.evaluate("document.activeElement.dataset.faceId") == cards.nth(1).get_attribute("data-face-id")
    page.keyboard.press("4")  # happy
    page.wait_for_function("document.querySelectorAll('#face-grid .lface.confirmed').length === 2")
    assert cards.nth(1).locator(".decision").get_attribute("data-face-label") == "happy"
    assert page.inner_text("[data-count=confirmed]") == "2" and page.inner_text("[data-count=pending]") == "0"
    page.wait_for_function("document.getElementById('confirmed-chart').data[0].y.some((n) => n >= 1)")

    page.fill("#id_dataset_name", "Holiday faces")
    page.click("#dataset-button")
    link = page.wait_for_selector("#new-dataset-link")
    assert link.inner_text() == "Holiday faces"
    link.click()
    page.wait_for_url(re.compile(r".*/datasets/\d+/$"))
    assert page.inner_text("#dataset-status") == "ready"
    assert page.inner_text("#num-items") == "2"
    assert LabelingFace.objects.filter(status="confirmed").count() == 2
