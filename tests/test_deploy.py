"""Deployment defaults: the secret key rule, and `check --deploy` under the README's production settings.

Each test starts Python in a subprocess, since settings are read once, at import.
"""
import os
import secrets
import subprocess
import sys

from tests.conftest import ROOT

# The environment of the README's "Production settings" (behind a TLS-ending proxy).
PRODUCTION = {
    "DEBUG": "False",
    "ALLOWED_HOSTS": "ferweb.example.org",
    "CSRF_TRUSTED_ORIGINS": "https://ferweb.example.org",
    "FERWEB_BEHIND_TLS_PROXY": "True",
    "SECURE_SSL_REDIRECT": "True",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "True",
    "SECURE_HSTS_PRELOAD": "True",
    "SESSION_COOKIE_SECURE": "True",
    "CSRF_COOKIE_SECURE": "True",
}
# Every variable these tests set, and the test runner's DJANGO_ALLOW_ASYNC_UNSAFE, which no deployment sets.
NOT_INHERITED = [*PRODUCTION, "SECRET_KEY", "FERWEB_DATA_DIR", "FERWEB_LOGIN_RATE", "DJANGO_ALLOW_ASYNC_UNSAFE"]


def python(args, tmp_path, **env):
    """Run Python from the repository, in this environment less NOT_INHERITED, plus `env`."""
    base = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    base.update(DJANGO_SETTINGS_MODULE="ferweb.settings", FERWEB_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=base, capture_output=True, text=True, timeout=120
    )


def setting(names, tmp_path, **env):
    """Print the named settings, space-separated, as a process with this environment sees them."""
    values = ", ".join(f"settings.{name}" for name in names.split())
    return python(["-c", f"from django.conf import settings; print({values})"], tmp_path, **env)


def test_check_deploy_is_clean_under_the_production_settings(tmp_path):
    result = python(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path,
        SECRET_KEY=secrets.token_urlsafe(50), **PRODUCTION,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_names_what_a_laptop_setup_lacks(tmp_path):
    """The clean check above is not clean by accident: the defaults fail it, for the reasons it fixes."""
    result = python(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], tmp_path, SECRET_KEY="short")
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W009", "security.W012", "security.W016"):
        assert warning in result.stderr


def test_settings_refuse_to_start_without_a_secret_key_when_debug_is_off(tmp_path):
    result = setting("SECRET_KEY", tmp_path, DEBUG="False")
    assert result.returncode != 0
    assert "ImproperlyConfigured: No secret key: set SECRET_KEY" in result.stderr
    assert str(tmp_path / "data" / "secret-key.txt") in result.stderr


def test_settings_read_the_key_that_make_run_keeps(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret-key.txt").write_text("kept-key-" + "x" * 50 + "\n")
    result = setting("SECRET_KEY", tmp_path, DEBUG="False")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "kept-key-" + "x" * 50


def test_the_environment_key_wins_over_the_kept_one(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "secret-key.txt").write_text("kept-key")
    result = setting("SECRET_KEY", tmp_path, SECRET_KEY="environment-key")
    assert result.stdout.strip() == "environment-key"


def test_debug_runs_on_a_development_key(tmp_path):
    result = setting("SECRET_KEY", tmp_path, DEBUG="True")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ferweb-development-key-never-use-in-production"


def test_a_laptop_keeps_plain_http_working(tmp_path):
    names = "SECURE_SSL_REDIRECT SESSION_COOKIE_SECURE CSRF_COOKIE_SECURE SECURE_HSTS_SECONDS SECURE_PROXY_SSL_HEADER"
    result = setting(names, tmp_path, SECRET_KEY="k")
    assert result.stdout.strip() == "False False False 0 None"


def test_a_throttle_rate_that_is_not_drfs_syntax_is_refused_with_an_example(tmp_path):
    result = setting("FERWEB_LOGIN_RATE", tmp_path, SECRET_KEY="k", FERWEB_LOGIN_RATE="10 per minute")
    assert result.returncode != 0
    assert "FERWEB_LOGIN_RATE must look like 10/minute (periods: second, minute, hour, day), got '10 per minute'" in result.stderr
