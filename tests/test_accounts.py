import pytest
from django.contrib.auth import get_user_model

from tests.conftest import PASSWORD


@pytest.mark.django_db
def test_it_registers_and_issues_a_token(anon_api):
    response = anon_api.post("/api/auth/register/", {"username": "erin", "password": PASSWORD}, format="json")
    assert response.status_code == 201
    assert response.json()["username"] == "erin"
    response = anon_api.post("/api/auth/token/", {"username": "erin", "password": PASSWORD}, format="json")
    assert response.status_code == 200
    assert len(response.json()["token"]) == 40


@pytest.mark.django_db
def test_it_rejects_a_weak_password_with_the_validators_message(anon_api):
    response = anon_api.post("/api/auth/register/", {"username": "erin", "password": "123"}, format="json")
    assert response.status_code == 400
    assert "This password is too short. It must contain at least 8 characters." in response.json()["fields"]["password"]
    assert not get_user_model().objects.filter(username="erin").exists()


@pytest.mark.django_db
def test_it_rejects_a_taken_username(anon_api, alice):
    response = anon_api.post("/api/auth/register/", {"username": "Alice", "password": PASSWORD}, format="json")
    assert response.status_code == 400
    assert response.json()["fields"]["username"] == ["A user with that username already exists."]


@pytest.mark.django_db
def test_it_requires_authentication_for_the_api(anon_api):
    response = anon_api.get("/api/schema/")
    assert response.status_code == 401


@pytest.mark.django_db
def test_it_closes_signup_when_the_setting_says_so(anon_api, settings):
    settings.FERWEB_OPEN_SIGNUP = False
    response = anon_api.post("/api/auth/register/", {"username": "erin", "password": PASSWORD}, format="json")
    assert response.status_code == 403


@pytest.mark.django_db
def test_the_signup_page_creates_a_user_and_logs_in(client):
    response = client.post(
        "/accounts/signup/", {"username": "erin", "password1": PASSWORD, "password2": PASSWORD}
    )
    assert response.status_code == 302
    assert response.url == "/datasets/"
    assert get_user_model().objects.filter(username="erin").exists()


@pytest.mark.django_db
def test_the_login_page_renders(client):
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    assert b"Log in" in response.content


@pytest.mark.django_db
def test_the_openapi_schema_is_served_to_users(alice_api):
    response = alice_api.get("/api/schema/")
    assert response.status_code == 200
    assert b"/api/auth/register/" in response.content
