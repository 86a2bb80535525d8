"""Throttles per address and lockout per account on every route that checks or sets a password.

alice guesses her own password wrong; mallory (203.0.113.66) hammers the login routes.
"""
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from axes.utils import reset as axes_reset
from django.contrib.auth import base_user
from django.test import RequestFactory
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError

from ferweb.accounts.abuse import AddressRateThrottle, LoginThrottle, client_address
from tests.conftest import PASSWORD

MALLORY = "203.0.113.66"
WINDOW_START = 1_700_006_400.0  # a whole number of days since the epoch: every window starts here


class Clock:
    """The throttles' clock, moved by hand, so that no window ends in the middle of a test."""

    def __init__(self):
        self.now = WINDOW_START + 0.5

    def __call__(self):
        return self.now


@pytest.fixture(autouse=True)
def limits(settings, monkeypatch):
    """Counters of this test's own (a fresh key prefix), fast hashing, and limits a test tightens."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-abuse-{uuid.uuid4().hex}"}}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.FERWEB_LOGIN_RATE = "100/minute"
    settings.FERWEB_SIGNUP_RATE = "100/hour"
    settings.AXES_FAILURE_LIMIT = 100
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    return settings


@pytest.fixture(autouse=True)
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(AddressRateThrottle, "timer", staticmethod(clock))
    return clock


@pytest.fixture
def hashes(monkeypatch):
    """Counts password hashes: checking one (a user who exists) and making one (sign-up, a user who does not)."""
    counter = {"n": 0}

    def counting(function):
        def wrapper(*args, **kwargs):
            counter["n"] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(base_user, "check_password", counting(base_user.check_password))
    monkeypatch.setattr(base_user, "make_password", counting(base_user.make_password))
    return counter


def token(client, username="alice", password=PASSWORD, address="127.0.0.1"):
    return client.post(
        "/api/auth/token/", {"username": username, "password": password}, format="json", REMOTE_ADDR=address
    )


def login_page(client, username="alice", password=PASSWORD, address="127.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


# Throttles, per address


@pytest.mark.django_db
def test_the_token_api_answers_429_with_retry_after_past_the_login_rate(anon_api, alice, limits):
    limits.FERWEB_LOGIN_RATE = "3/minute"
    for _ in range(3):
        assert token(anon_api, password="wrong", address=MALLORY).status_code == 400
    response = token(anon_api, password="wrong", address=MALLORY)
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert response.json()["detail"].startswith("Too many requests: try again in ")
    assert response["Retry-After"] == "60"


@pytest.mark.django_db
def test_the_throttle_refuses_before_any_password_is_hashed(anon_api, client, alice, limits, hashes):
    limits.FERWEB_LOGIN_RATE = "2/minute"
    token(anon_api, password="wrong", address=MALLORY)
    token(anon_api, username="nobody", password="wrong", address=MALLORY)
    assert hashes["n"] == 2  # the counter sees both kinds of check
    assert token(anon_api, password="wrong", address=MALLORY).status_code == 429
    assert login_page(client, password="wrong", address=MALLORY).status_code == 429
    assert hashes["n"] == 2


@pytest.mark.django_db
def test_the_throttle_counts_per_address(anon_api, alice, limits):
    limits.FERWEB_LOGIN_RATE = "2/minute"
    token(anon_api, password="wrong", address=MALLORY)
    token(anon_api, password="wrong", address=MALLORY)
    assert token(anon_api, password="wrong", address=MALLORY).status_code == 429
    assert token(anon_api).status_code == 200


@pytest.mark.django_db
def test_a_forged_x_forwarded_for_does_not_buy_more_tries(anon_api, alice, limits):
    limits.FERWEB_LOGIN_RATE = "2/minute"
    statuses = [
        anon_api.post(
            "/api/auth/token/", {"username": "alice", "password": "wrong"}, format="json",
            REMOTE_ADDR=MALLORY, HTTP_X_FORWARDED_FOR=f"198.51.100.{i}",
        ).status_code
        for i in range(3)
    ]
    assert statuses == [400, 400, 429]


def test_an_ipv6_64_counts_as_one_address():
    factory = RequestFactory()

    def address(remote_addr):
        return client_address(factory.post("/", REMOTE_ADDR=remote_addr))

    assert address("2001:db8:1:2::1") == address("2001:db8:1:2:ffff::9") == "2001:db8:1:2::"
    assert address("2001:db8:1:3::1") != address("2001:db8:1:2::1")
    assert address("::ffff:203.0.113.66") == address(MALLORY) == MALLORY


@pytest.mark.django_db
def test_the_login_page_answers_a_readable_429_page(client, alice, limits, clock):
    limits.FERWEB_LOGIN_RATE = "3/minute"
    for _ in range(3):
        assert login_page(client, password="wrong").status_code == 200  # the form, with its error
    response = login_page(client)
    assert response.status_code == 429
    assert response["Retry-After"] == "60"
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert "Too many attempts" in html and "try again in 60 seconds" in html
    assert client.get("/accounts/login/").status_code == 200  # the form still shows

    clock.now += 60
    response = login_page(client)
    assert response.status_code == 302 and response.url == "/datasets/"


@pytest.mark.django_db
def test_the_admin_login_shares_the_login_limit(anon_api, client, carol, limits):
    limits.FERWEB_LOGIN_RATE = "2/minute"
    token(anon_api, username="carol", password="wrong")
    token(anon_api, username="carol", password="wrong")
    response = client.post("/admin/login/", {"username": "carol", "password": PASSWORD})
    assert response.status_code == 429
    assert "Too many attempts" in response.content.decode()


@pytest.mark.django_db
def test_the_register_api_is_throttled_per_address(anon_api, limits):
    limits.FERWEB_SIGNUP_RATE = "2/hour"
    for name in ("erin", "frank"):
        response = anon_api.post("/api/auth/register/", {"username": name, "password": PASSWORD}, format="json")
        assert response.status_code == 201
    response = anon_api.post("/api/auth/register/", {"username": "gus", "password": PASSWORD}, format="json")
    assert response.status_code == 429
    assert response.json()["code"] == "throttled"
    assert response["Retry-After"] == "3600"
    other = anon_api.post(
        "/api/auth/register/", {"username": "gus", "password": PASSWORD}, format="json", REMOTE_ADDR="198.51.100.2"
    )
    assert other.status_code == 201


@pytest.mark.django_db
def test_the_signup_page_is_throttled_with_a_readable_page(client, limits, hashes):
    limits.FERWEB_SIGNUP_RATE = "2/hour"
    for name in ("erin", "frank"):
        response = client.post("/accounts/signup/", {"username": name, "password1": PASSWORD, "password2": PASSWORD})
        assert response.status_code == 302
        client.logout()
    made = hashes["n"]
    response = client.post("/accounts/signup/", {"username": "gus", "password1": PASSWORD, "password2": PASSWORD})
    assert response.status_code == 429
    assert response["Retry-After"] == "3600"
    assert "try again in 60 minutes" in response.content.decode()
    assert hashes["n"] == made
    assert client.get("/accounts/signup/").status_code == 200


def test_tries_that_arrive_together_are_each_counted(limits):
    """Twenty requests at once, in threads with their own Redis connections: exactly the rate passes."""
    limits.FERWEB_LOGIN_RATE = "5/hour"
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR=MALLORY)
    start = threading.Barrier(20)

    def attempt(_):
        start.wait()
        return LoginThrottle().allow_request(request, None)

    with ThreadPoolExecutor(20) as pool:
        allowed = list(pool.map(attempt, range(20)))
    assert allowed.count(True) == 5


def test_logins_go_on_while_the_cache_is_down(limits, monkeypatch):
    """Sessions live in the database: losing Redis must not lock everybody out."""

    class DownCache:
        def add(self, *args, **kwargs):
            raise RedisConnectionError("Connection refused")

    limits.FERWEB_LOGIN_RATE = "1/hour"
    monkeypatch.setattr(AddressRateThrottle, "cache", DownCache())
    request = RequestFactory().post("/accounts/login/", REMOTE_ADDR=MALLORY)
    assert all(LoginThrottle().allow_request(request, None) for _ in range(3))


# Lockout, per username and address


@pytest.mark.django_db
def test_a_locked_out_account_answers_429_even_with_the_right_password(anon_api, alice, limits, hashes):
    limits.AXES_FAILURE_LIMIT = 3
    assert [token(anon_api, password="wrong").status_code for _ in range(3)] == [400, 400, 429]
    hashed = hashes["n"]
    response = token(anon_api)
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert response.json() == {
        "detail": "Too many failed logins for this account: try again in 15 minutes.",
        "code": "locked_out",
    }
    assert hashes["n"] == hashed  # a locked-out pair is refused before its password is checked


@pytest.mark.django_db
def test_the_lockout_is_per_username_and_address(anon_api, alice, bob, limits):
    limits.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        token(anon_api, password="wrong", address=MALLORY)
    assert token(anon_api, address=MALLORY).status_code == 429
    assert token(anon_api).status_code == 200  # alice, from her own address
    assert token(anon_api, username="bob", address=MALLORY).status_code == 200


@pytest.mark.django_db
def test_the_login_page_shows_the_lockout_as_a_page(client, alice, limits):
    limits.AXES_FAILURE_LIMIT = 3
    login_page(client, password="wrong")
    login_page(client, password="wrong")
    response = login_page(client, password="wrong")
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    html = response.content.decode()
    assert "Too many failed logins for this account: try again in 15 minutes." in html
    assert login_page(client).status_code == 429


@pytest.mark.django_db
def test_the_lockout_ends_after_the_cool_off(anon_api, alice, limits):
    limits.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        token(anon_api, password="wrong")
    assert token(anon_api).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert token(anon_api).status_code == 200


@pytest.mark.django_db
def test_an_admin_can_lift_a_lockout(anon_api, alice, limits):
    limits.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        token(anon_api, password="wrong")
    axes_reset(username="alice")  # what `manage.py axes_reset_username alice` does
    assert token(anon_api).status_code == 200


@pytest.mark.django_db
def test_a_successful_login_forgets_earlier_failures(anon_api, client, alice, limits):
    limits.AXES_FAILURE_LIMIT = 3
    token(anon_api, password="wrong")
    token(anon_api, password="wrong")
    assert token(anon_api).status_code == 200
    token(anon_api, password="wrong")
    token(anon_api, password="wrong")
    assert login_page(client).status_code == 302
    assert [token(anon_api, password="wrong").status_code for _ in range(2)] == [400, 400]


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_lockout_page_is_served_under_asgi_too(async_client, limits):
    """The web server runs Django as ASGI, where axes' middleware takes its async path."""
    from asgiref.sync import sync_to_async

    from tests.conftest import make_user

    await sync_to_async(make_user)("alice")
    limits.AXES_FAILURE_LIMIT = 2
    for _ in range(2):
        response = await async_client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    assert response.status_code == 429
    assert response["Retry-After"] == "900"
    assert "Too many failed logins for this account" in response.content.decode()
