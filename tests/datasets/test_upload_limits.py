"""The upload limit over a real ASGI server, with and without a Content-Length."""
import http.client
import json
from urllib.parse import urlparse

import pytest
from rest_framework.authtoken.models import Token

pytestmark = pytest.mark.worker

LIMIT = 1024 * 1024


@pytest.fixture
def one_megabyte_limit(monkeypatch):
    """The server started by live_asgi reads its limit from the environment."""
    monkeypatch.setenv("FERWEB_MAX_UPLOAD_BYTES", str(LIMIT))


def post(url, token, body: bytes, headers: dict, chunked: bool):
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    try:
        connection.putrequest("POST", "/api/datasets/")
        connection.putheader("Authorization", f"Token {token}")
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader(*(("Transfer-Encoding", "chunked") if chunked else ("Content-Length", str(len(body)))))
        connection.endheaders()
        if chunked:
            for start in range(0, len(body), 64 * 1024):
                chunk = body[start:start + 64 * 1024]
                connection.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            connection.send(b"0\r\n\r\n")
        else:
            connection.send(body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_uploads_over_the_limit_get_413_and_uploads_without_a_length_get_411(one_megabyte_limit, live_asgi, alice):
    token = Token.objects.create(user=alice).key
    boundary = "FerwebBoundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.zip\"\r\n"
        "Content-Type: application/zip\r\n\r\n"
    ).encode() + b"\0" * (2 * LIMIT) + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}

    assert post(live_asgi.url, token, body, headers, chunked=False) == (
        413, {"detail": "Upload too large: the limit is 1 MB."}
    )
    assert post(live_asgi.url, token, body, headers, chunked=True) == (
        411, {"detail": "Length required: send the upload with a Content-Length header (browsers and curl -F do)."}
    )
