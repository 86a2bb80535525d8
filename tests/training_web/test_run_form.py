"""The new-run form in headless Chromium: presets fill it, Advanced folds away, the estimate follows."""
import time

import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from tests.conftest import signup
from tests.training_web.conftest import make_ready_dataset


def estimate_seconds(page) -> float:
    page.wait_for_selector("#run-estimate[data-state=ready]")
    return float(page.get_attribute("#run-estimate", "data-seconds"))


@pytest.mark.browser
def test_presets_fill_the_form_and_the_estimate_follows_the_settings(live_asgi, page):
    try:
        signup(page, live_asgi.url, "fiona")
        fiona = get_user_model().objects.get(username="fiona")
        dataset = make_ready_dataset(fiona, per_class=20, name="fiona's faces")

        started = time.monotonic()
        page.goto(f"{live_asgi.url}/runs/new/")
        assert time.monotonic() - started < 5, "the form took too long to open"
        assert page.inner_text("#id_dataset") == f"#{dataset.pk} fiona's faces · 60 faces"

        # 1. The training worker has no GPU: the form opens on the quick preset, its values in the fields.
        assert page.get_attribute('[data-preset="quick"]', "aria-pressed") == "true"
        assert page.inner_text("#preset-status") == "quick"
        assert page.input_value("#id_architecture") == "fast_resnet"
        assert page.input_value("#id_optimizer") == "adamw"
        assert page.input_value("#id_epochs") == "5" and page.input_value("#id_batch_size") == "128"
        assert "FERWeb's own" in page.inner_text("#architecture-description")
        assert page.is_hidden("#id_tta_flip"), "advanced settings should start folded"

        # 2. Another preset fills every field with its recipe.
        page.click('[data-preset="bah_xue_2022"]')
        assert page.input_value("#id_architecture") == "adapted_residual"
        assert page.input_value("#id_optimizer") == "nadam"
        assert page.input_value("#id_epochs") == "100" and page.input_value("#id_batch_size") == "64"
        assert page.is_checked("#id_class_weighting")
        assert "Bah & Xue" in page.inner_text("#architecture-description")
        assert page.get_attribute('[data-preset="bah_xue_2022"]', "aria-pressed") == "true"
        assert page.get_attribute('[data-preset="quick"]', "aria-pressed") == "false"
        assert page.inner_text("#preset-status") == "bah_xue_2022"

        # 3. Advanced settings open; fields the next preset does not set go back to their defaults.
        page.click("#advanced-settings > summary")
        assert page.is_visible("#id_tta_flip")
        assert page.input_value("#id_contrast") == "0"  # the paper lists no contrast change
        assert page.input_value("#id_early_stopping_patience") == "30"
        page.click('[data-preset="mutaliyev_2026"]')
        assert page.input_value("#id_architecture") == "light_residual"
        assert page.input_value("#id_optimizer") == "adam" and page.input_value("#id_scheduler") == "cosine"
        assert page.input_value("#id_contrast") == "0.2" and page.input_value("#id_epochs") == "60"

        # 4. An edit marks the preset changed; undoing it clears the mark.
        page.fill("#id_epochs", "61")
        assert page.inner_text("#preset-status") == "mutaliyev_2026 (changed)"
        page.fill("#id_epochs", "60")
        assert page.inner_text("#preset-status") == "mutaliyev_2026"

        # 5. The duration estimate appears under Start and follows the number of epochs.
        page.click('[data-preset="quick"]')
        quick = estimate_seconds(page)
        text = page.inner_text("#run-estimate")
        assert text.startswith("About ") and "training" in text, text
        page.fill("#id_epochs", "50")
        page.wait_for_function(f"document.querySelector('#run-estimate').dataset.seconds > {quick * 2}")
        assert page.inner_text("#run-estimate") != text
        page.fill("#id_epochs", "0")
        page.wait_for_selector("#run-estimate[data-state=error]")
        assert "Epochs" in page.inner_text("#run-estimate")
    finally:
        connections.close_all()
