"""Requests the API cannot read get a JSON answer in the API's one error shape, never an empty or HTML one."""
import json

import pytest
from django.http import HttpResponse, HttpResponseNotAllowed
from django.http.multipartparser import MultiPartParserError
from django.test import Client, RequestFactory

from ferweb.api_middleware import ApiErrorMiddleware

pytestmark = pytest.mark.django_db

UPLOAD_ROUTES = ["/api/datasets/", "/api/predict/", "/api/jobs/", "/api/labeling/sets/"]
NO_BOUNDARY = ("multipart/form-data", b'--x\r\nContent-Disposition: form-data; name="file"\r\n\r\n1\r\n--x--\r\n')
GARBAGE = ("multipart/form-data; boundary=x", b"garbage, not a multipart body")
BAD_BASE64 = ("multipart/form-data; boundary=x", (
    b'--x\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!\r\n--x--\r\n"
))
CSRF = "abcdefghijklmnopqrstuvwxyz012345"


def session_client(user):
    """A browser-like client: session cookie and CSRF enforced, as the pages' fetch() calls are."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.cookies["csrftoken"] = CSRF
    return client


def post(client, path, content_type, body):
    return client.generic("POST", path, body, content_type=content_type, HTTP_X_CSRFTOKEN=CSRF)


def assert_error_shape(response, status=400):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) <= {"detail", "code", "fields"} and body["detail"] and body["code"]
    return body


@pytest.mark.parametrize("path", UPLOAD_ROUTES)
def test_a_multipart_body_without_a_boundary_is_a_json_parse_error(alice, alice_api, path):
    for client in (alice_api, session_client(alice)):
        body = assert_error_shape(post(client, path, *NO_BOUNDARY))
        assert body["code"] == "parse_error" and "boundary" in body["detail"]


@pytest.mark.parametrize("path", UPLOAD_ROUTES)
def test_garbage_and_undecodable_multipart_bodies_get_json_400s(alice, alice_api, path):
    for client in (alice_api, session_client(alice)):
        assert_error_shape(post(client, path, *GARBAGE))  # read as a form without the file: says which field
        assert assert_error_shape(post(client, path, *BAD_BASE64))["code"] == "parse_error"


@pytest.mark.parametrize("path", ["/api/predict/", "/api/jobs/"])
def test_an_upload_over_djangos_file_count_is_refused_with_the_limit(alice_api, settings, path):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 3
    parts = b"".join(
        b'--x\r\nContent-Disposition: form-data; name="file"; filename="p%d.jpg"\r\n\r\nabc\r\n' % i for i in range(5)
    )
    body = assert_error_shape(post(alice_api, path, "multipart/form-data; boundary=x", parts + b"--x--\r\n"))
    assert body["code"] == "too_many_files" and "the limit is 3" in body["detail"]


def test_an_unknown_api_route_with_an_unreadable_body_is_a_json_404(alice):
    """Django's own error pages read request.POST for their CSRF token; this one must not crash on it."""
    body = assert_error_shape(post(session_client(alice), "/api/nowhere/", *NO_BOUNDARY), status=404)
    assert body["code"] == "not_found"


def test_non_json_errors_under_api_are_rewritten_and_pages_are_left_alone():
    factory = RequestFactory()
    not_allowed = ApiErrorMiddleware(lambda request: HttpResponseNotAllowed(["GET"]))
    response = not_allowed(factory.post("/api/somewhere/"))
    assert response.status_code == 405 and response["Allow"] == "GET"
    assert json.loads(response.content) == {"detail": "Method Not Allowed.", "code": "method_not_allowed"}
    page = ApiErrorMiddleware(lambda request: HttpResponse("<h1>gone</h1>", status=404))
    assert page(factory.get("/datasets/")).content == b"<h1>gone</h1>"


def test_a_parser_error_outside_drf_is_a_malformed_request():
    """Views that are not DRF's (none under /api/ today) get the same answer DRF's parse_error gives."""
    middleware = ApiErrorMiddleware(lambda request: HttpResponse())
    error = MultiPartParserError("Invalid boundary in multipart: None")
    response = middleware.process_exception(RequestFactory().post("/api/somewhere/"), error)
    assert response.status_code == 400
    assert json.loads(response.content)["code"] == "malformed_request"
    assert middleware.process_exception(RequestFactory().post("/datasets/"), error) is None
