"""The predict page starts each attempt afresh: an error never stands beside an earlier photo's result."""
import pytest

from ..conftest import signup


@pytest.mark.browser
def test_a_bad_file_after_a_good_photo_shows_only_the_error(served_model, live_asgi, page, tmp_path, two_face_jpeg):
    signup(page, live_asgi.url, "retryuser")
    good = tmp_path / "two.jpg"
    good.write_bytes(two_face_jpeg)
    bad = tmp_path / "notes.jpg"
    bad.write_bytes(b"these are notes, not a photo")

    page.goto(f"{live_asgi.url}/predict/")
    page.set_input_files("#id_image", str(good))
    page.click("#predict-form button[type=submit]")
    page.wait_for_selector("#predict-faces [data-face-label]")
    assert page.locator("#predict-stage").is_visible() and page.locator("#predict-stage .box").count() == 2

    page.set_input_files("#id_image", str(bad))
    page.click("#predict-form button[type=submit]")
    page.wait_for_selector("#predict-error:not([hidden])")
    assert page.inner_text("#predict-error")  # the server's reason, in words
    assert not page.locator("#predict-stage").is_visible()
    assert page.locator("#predict-stage .box").count() == 0
    assert page.locator("#predict-faces .face-card").count() == 0
    assert page.inner_text("#predict-message") == ""
    assert (page.inner_text("#predict-model"), page.inner_text("#predict-timing")) == ("–", "–")

    page.set_input_files("#id_image", str(good))  # and a good photo again works as the first time
    page.click("#predict-form button[type=submit]")
    page.wait_for_selector("#predict-faces [data-face-label]")
    assert page.locator("#predict-error").is_hidden() and page.locator("#predict-faces .face-card").count() == 2
