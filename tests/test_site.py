"""Site-wide pages as a user meets them: API docs offline, friendly error pages, the favicon."""
import os
import re
import subprocess
import sys

import pytest
from django.core.exceptions import PermissionDenied
from django.test import Client, RequestFactory
from django.views import defaults

from ferweb.datasets.models import Dataset

from .conftest import ROOT

pytestmark = pytest.mark.django_db


def logged_in(user):
    client = Client()
    client.force_login(user)
    return client


def asset_urls(html: str) -> list[str]:
    """Every src/href the page loads, stylesheets, scripts and icons alike."""
    return re.findall(r'(?:src|href)="([^"]+)"', html)


def test_debug_is_off_unless_asked_for():
    env = {k: v for k, v in os.environ.items() if k != "DEBUG"}
    env["DJANGO_SETTINGS_MODULE"] = "ferweb.settings"
    code = "from django.conf import settings; print(settings.DEBUG)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_api_docs_load_everything_from_this_site(alice):
    client = logged_in(alice)
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "cdn" not in html
    assets = asset_urls(html)
    assert any(u.endswith("swagger-ui-bundle.js") for u in assets)
    assert any(u.endswith("swagger-ui.css") for u in assets)
    for url in assets:
        assert url.startswith("/") and not url.startswith("//"), url  # this site, no other host
        assert client.get(url).status_code == 200, url
    assert client.get("/api/schema/").status_code == 200


def test_another_users_dataset_is_a_friendly_404(alice, bob):
    dataset = Dataset.objects.create(owner=alice, name="private", status=Dataset.Status.READY)
    for url in (f"/datasets/{dataset.pk}/", "/no/such/page/"):
        response = logged_in(bob).get(url)
        assert response.status_code == 404
        html = response.content.decode()
        assert "Page not found" in html and 'href="/">Back to FERWeb</a>' in html
        assert 'class="topbar"' in html  # the site's own layout, not Django's
        assert "URLconf" not in html and "api/datasets/" not in html and "private" not in html


def test_the_403_and_500_pages_use_the_site_layout(alice):
    request = RequestFactory().get("/somewhere/")
    request.user = alice
    forbidden = defaults.permission_denied(request, PermissionDenied())
    assert forbidden.status_code == 403 and b"Not allowed" in forbidden.content
    broken = defaults.server_error(request)  # Django renders it with no request context
    assert broken.status_code == 500
    assert b"Something went wrong" in broken.content and b'class="topbar"' in broken.content


def test_the_favicon_is_linked_and_served(client, alice):
    html = client.get("/accounts/login/").content.decode()
    icon = re.search(r'<link rel="icon" type="image/png" href="([^"]+)"', html).group(1)
    response = client.get(icon)
    assert response.status_code == 200 and response["Content-Type"] == "image/png"
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")
    assert client.get("/favicon.ico", follow=True).redirect_chain[-1][0] == icon
