"""Limits on the routes that check or set a password: throttles per address, lockout per account.

Each password check costs ~0.4 s of CPU (PBKDF2), so a few clients guessing passwords could keep
every core busy. Two guards, each with one mechanism for the API and the pages:

1. Throttles, per client address, in the shared cache: `LoginThrottle` (login page, admin login,
   `/api/auth/token/`) and `SignupThrottle` (sign-up page, `/api/auth/register/`). API views list
   them in `throttle_classes`; pages are wrapped in `throttle_posts`. Both refuse before the view
   runs, so a refused request hashes nothing.
2. Lockout, per username and address, by django-axes (settings `AXES_*`): past
   FERWEB_LOCKOUT_FAILURES failures that pair is refused, right password or not, until
   FERWEB_LOCKOUT_MINUTES pass without another try. `lockout_response` is axes' answer for pages;
   the token API raises `locked_out_error()` itself, since axes flags DRF's request, not Django's.

Both answer 429 with Retry-After: JSON in the API's error shape under /api/, a page elsewhere.
"""
import ipaddress
import logging
import math
from functools import wraps

from axes.helpers import get_cool_off
from django.conf import settings
from django.shortcuts import render
from redis.exceptions import RedisError
from rest_framework.permissions import SAFE_METHODS
from rest_framework.throttling import SimpleRateThrottle

from ferweb.api_errors import ApiError, error_response

logger = logging.getLogger(__name__)


def client_address(request) -> str:
    """Who is asking, for throttles and lockouts: REMOTE_ADDR, with an IPv6 /64 counted as one address.

    Never a client-sent header: the web server puts a trusted proxy's X-Forwarded-For into
    REMOTE_ADDR (uvicorn's FORWARDED_ALLOW_IPS), and anything else could be forged. One IPv6
    subscriber usually holds a whole /64, so single IPv6 addresses would cost an attacker nothing.
    """
    # Always a plain address: axes stores it in an IP column (PostgreSQL's inet refuses anything
    # else). A request with no peer (the test client, a unix socket) counts as 0.0.0.0.
    try:
        ip = ipaddress.ip_address(request.META.get("REMOTE_ADDR") or "0.0.0.0")
    except ValueError:
        return "0.0.0.0"
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False).network_address)
    return str(ip)


class AddressRateThrottle(SimpleRateThrottle):
    """Counts POSTs (and other unsafe methods) per client address in fixed windows of the rate's period.

    DRF's own throttles read a list of timestamps and write it back: requests that arrive together
    all read the same list, and all pass. Here one atomic increment in the shared cache decides
    (the price: a client may spend two windows' worth across the edge between them).
    The rate is read from settings for each request, so the environment and tests can set it.
    """

    scope = ""  # names the counter
    rate_setting = ""  # the setting that holds the rate, in DRF's syntax

    def get_rate(self):
        return getattr(settings, self.rate_setting)

    def get_ident(self, request):
        return client_address(request)

    def allow_request(self, request, view):
        if request.method in SAFE_METHODS:
            return True  # showing a form costs nothing
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_end = (window + 1) * self.duration
        key = f"throttle:{self.scope}:{self.get_ident(request)}:{window}"
        try:
            self.cache.add(key, 0, timeout=self.duration + 1)
            count = self.cache.incr(key)
        except ValueError:  # the counter expired between add and incr
            count = 1
            self.cache.set(key, count, timeout=self.duration + 1)
        except RedisError:
            # Logins keep working while Redis is down (sessions live in the database).
            logger.exception("throttle %s: the cache does not answer; letting the request through", self.scope)
            return True
        return count <= self.num_requests

    def wait(self):
        return max(self.window_end - self.now, 1)


class LoginThrottle(AddressRateThrottle):
    scope = "login"
    rate_setting = "FERWEB_LOGIN_RATE"


class SignupThrottle(AddressRateThrottle):
    scope = "signup"
    rate_setting = "FERWEB_SIGNUP_RATE"


def _in_words(seconds: int) -> str:
    if seconds < 120:
        return "1 second" if seconds == 1 else f"{seconds} seconds"
    return f"{math.ceil(seconds / 60)} minutes"


def too_many_requests_page(request, message: str, retry_after: int):
    response = render(
        request,
        "accounts/too_many_requests.html",
        {"message": message, "retry_after": _in_words(retry_after)},
        status=429,
    )
    response["Retry-After"] = str(retry_after)
    return response


def throttle_posts(throttle_class):
    """Page views: refuse a POST over `throttle_class`'s rate with a 429 page, before the view runs."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            throttle = throttle_class()
            if not throttle.allow_request(request, None):
                retry_after = math.ceil(throttle.wait())
                message = f"Too many attempts from your address: try again in {_in_words(retry_after)}."
                return too_many_requests_page(request, message, retry_after)
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def _lockout_seconds(request) -> int:
    # Every try during a lockout counts as a failure and starts the cool-off again (axes'
    # AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT), so the wait is always the whole cool-off.
    return math.ceil(get_cool_off(request).total_seconds())


def _lockout_message(retry_after: int) -> str:
    return f"Too many failed logins for this account: try again in {_in_words(retry_after)}."


def locked_out_error(request) -> ApiError:
    retry_after = _lockout_seconds(request)
    return ApiError(
        "locked_out", _lockout_message(retry_after), status=429, headers={"Retry-After": str(retry_after)}
    )


def lockout_response(request, original_response=None, credentials=None):
    """axes' AXES_LOCKOUT_CALLABLE: the answer to a login refused because its account is locked."""
    retry_after = _lockout_seconds(request)
    if request.path.startswith("/api/"):
        return error_response("locked_out", _lockout_message(retry_after), 429, Retry_After=str(retry_after))
    return too_many_requests_page(request, _lockout_message(retry_after), retry_after)
