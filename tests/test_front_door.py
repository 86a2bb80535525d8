"""What a visitor meets before logging in: the login page says what FERWeb is, the API docs send them to it."""
import json

import pytest
from django.conf import settings
from django.test import Client

from ferweb.urls import admin

from .conftest import PASSWORD

pytestmark = pytest.mark.django_db


def shipped_accuracy() -> str:
    card = json.loads(settings.FERWEB_DEFAULT_MODEL.with_suffix(".json").read_text())
    return f"{100 * card['metrics_summary']['accuracy']:.1f}%"


def words(response) -> str:
    return " ".join(response.content.decode().split())


def test_the_login_page_says_what_ferweb_does_with_the_shipped_models_accuracy(client):
    html = words(client.get("/accounts/login/"))
    assert "facial expression recognition" in html
    assert "angry, disgust, fear, happy, sad, surprise, neutral" in html
    for feature in ("Datasets.", "Training.", "Predictions.", "Webcam."):
        assert f"<strong>{feature}</strong>" in html
    assert f"<strong>{shipped_accuracy()}</strong> of held-out FER2013 faces" in html
    assert 'href="/accounts/signup/"' in html and '<button type="submit">Log in</button>' in html


def test_the_accuracy_follows_the_model_card_and_its_line_goes_without_one(client, tmp_path, settings):
    model = tmp_path / "default.onnx"
    settings.FERWEB_DEFAULT_MODEL = model
    (tmp_path / "default.json").write_text(json.dumps({"version": "v", "metrics_summary": {"accuracy": 0.4321}}))
    assert "labels <strong>43.2%</strong> of held-out" in words(client.get("/accounts/login/"))
    (tmp_path / "default.json").unlink()
    html = client.get("/accounts/login/").content.decode()
    assert 'id="shipped-accuracy"' not in html and 'id="intro"' in html


def test_a_closed_sign_up_is_not_offered(client, settings):
    settings.FERWEB_OPEN_SIGNUP = False
    html = client.get("/accounts/login/").content.decode()
    assert "No account yet?" not in html and "facial expression recognition" in html


def test_the_home_page_leads_a_visitor_to_the_introduction(client):
    response = client.get("/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert 'id="intro"' in response.content.decode()


def test_the_api_docs_send_a_logged_out_browser_to_log_in_and_back(client, alice):
    response = client.get("/api/docs/")
    assert response.status_code == 302 and response.url == "/accounts/login/?next=/api/docs/"
    page = client.get(response.url).content.decode()
    assert "Log in to read the API documentation" in page and 'value="/api/docs/"' in page
    assert client.get("/api/schema/").status_code == 401  # the schema and the operations still need a login

    logged_in = client.post("/accounts/login/?next=/api/docs/",
                            {"username": "alice", "password": PASSWORD, "next": "/api/docs/"})
    assert logged_in.status_code == 302 and logged_in.url == "/api/docs/"
    docs = client.get("/api/docs/")
    assert docs.status_code == 200 and b"swagger-ui-bundle.js" in docs.content


def test_the_docs_page_is_not_an_operation_of_the_api(alice_api):
    paths = alice_api.get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert "/api/docs/" not in paths and "/api/runs/" in paths


def test_the_login_note_is_only_for_the_api_docs(client):
    assert "API documentation" not in client.get("/accounts/login/?next=/runs/").content.decode()


# ---------------------------------------------------------------- admin


@pytest.fixture
def staff(carol):
    client = Client()
    client.force_login(carol)
    return client


def test_the_admin_names_ferweb_and_its_apps_in_words(staff):
    html = staff.get("/admin/").content.decode()
    assert "FERWeb administration" in html and "Django administration" not in html
    assert admin.site.site_title in staff.get("/admin/").content.decode()
    for name in ("Training", "Inference", "Datasets", "Labeling"):
        assert f'title="Models in the {name} application"' in html
    assert "Training_jobs" not in html and "training_jobs</a>" not in html


def test_runs_model_versions_and_jobs_cannot_be_added_by_hand(staff):
    html = staff.get("/admin/").content.decode()
    for url in ("/admin/training_jobs/trainingrun/", "/admin/inference/modelversion/", "/admin/inference/inferencejob/"):
        assert f'href="{url}add/"' not in html
        assert staff.get(f"{url}add/").status_code == 403
        assert staff.get(url).status_code == 200  # still listed, to read and act on
    assert 'href="/admin/datasets/dataset/add/"' in html  # other models keep their Add
