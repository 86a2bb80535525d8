"""Every page of the navigation fits a phone's width: nothing makes the page scroll sideways."""
import pytest

from .conftest import signup

PAGES = ["/datasets/", "/labeling/", "/runs/", "/runs/new/", "/models/", "/predict/", "/jobs/", "/webcam/"]


@pytest.mark.browser
def test_the_pages_fit_a_phone_screen(live_asgi, browser_factory):
    context = browser_factory().new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        signup(page, live_asgi.url, "phoneuser")
        for path in PAGES:
            page.goto(f"{live_asgi.url}{path}")
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} is {width} px wide"
            box = page.locator(".topbar .logout button").bounding_box()
            assert box["x"] + box["width"] <= 390, f"{path}: Log out is off screen"
    finally:
        context.close()
