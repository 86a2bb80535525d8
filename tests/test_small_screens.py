"""Every page of the navigation fits a phone's width: nothing makes the page scroll sideways."""
import pytest
from django.contrib.auth import get_user_model
from django.db import connections

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


def on_screen(locator, width=390) -> bool:
    """Shown and inside the phone's width, not scrolled off to the side of its card."""
    box = locator.bounding_box()
    return locator.is_visible() and box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width


@pytest.mark.browser
def test_the_runs_table_shows_name_status_and_accuracy_on_a_phone(live_asgi, browser_factory):
    from tests.training_web.test_charts import finished_run
    from tests.training_web.conftest import make_ready_dataset

    context = browser_factory().new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        signup(page, live_asgi.url, "runphone")
        owner = get_user_model().objects.get(username="runphone")
        run = finished_run(owner, make_ready_dataset(owner, per_class=2), [2.0, 1.5], [])
        connections.close_all()
        page.goto(f"{live_asgi.url}/runs/")
        row = page.locator(f"#runs-table tr[data-run='{run.pk}']")
        assert on_screen(row.locator(f"a[href='/runs/{run.pk}/']"))
        assert on_screen(row.locator("[data-status]")) and row.locator("[data-status]").inner_text() == "succeeded"
        accuracy = row.locator("[data-metric=accuracy]")
        assert on_screen(accuracy) and accuracy.inner_text().endswith("%")
        assert accuracy.evaluate("el => getComputedStyle(el, '::before').content") == '"accuracy"'  # it names itself
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
