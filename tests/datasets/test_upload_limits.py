"""The upload limit, enforced on the raw ASGI stream before Django reads a body."""
import asyncio
import http.client
import json
import socket
from urllib.parse import urlparse

import pytest
from rest_framework.authtoken.models import Token

from ferweb.upload_guard import UploadGuard

LIMIT = 1024 * 1024
TOO_LARGE = {"detail": "Upload too large: the limit is 1 MB.", "code": "too_large"}


class RecordingApp:
    """An ASGI app that reads the whole body, as Django does, and answers 200."""

    def __init__(self):
        self.called, self.body = False, b""

    async def __call__(self, scope, receive, send):
        self.called = True
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            self.body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def call_guard(headers, chunks):
    app, sent = RecordingApp(), []
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/api/datasets/", "headers": headers}
    asyncio.run(UploadGuard(app)(scope, receive, send))
    return app, sent, messages


@pytest.fixture
def one_megabyte_limit(settings, monkeypatch):
    settings.FERWEB_MAX_UPLOAD_BYTES = LIMIT
    monkeypatch.setenv("FERWEB_MAX_UPLOAD_BYTES", str(LIMIT))  # for servers the test starts


def test_a_declared_length_over_the_limit_is_refused_before_any_body_is_read(one_megabyte_limit):
    app, sent, unread = call_guard([(b"content-length", str(LIMIT + 1).encode())], [b"x" * 1000] * 3)
    assert not app.called and len(unread) == 3
    assert sent[0]["status"] == 413 and json.loads(sent[1]["body"]) == TOO_LARGE


def test_a_body_without_a_length_is_cut_off_as_soon_as_it_passes_the_limit(one_megabyte_limit):
    chunk = b"x" * (256 * 1024)
    app, sent, unread = call_guard([], [chunk] * 8)
    assert app.called and len(app.body) == 4 * len(chunk)  # the app never sees the chunk past the limit
    assert len(unread) == 3
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]


def test_a_body_within_the_limit_reaches_the_app(one_megabyte_limit):
    app, sent, _ = call_guard([(b"content-length", b"3000")], [b"x" * 1000] * 3)
    assert app.body == b"x" * 3000 and sent[0]["status"] == 200


def raw_post(url, token, headers: dict, body: bytes = b"", chunked=False) -> tuple[int, dict]:
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
        assert response.getheader("Content-Type") == "application/json"
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def multipart(size: int) -> tuple[bytes, dict]:
    boundary = "FerwebBoundary"
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.zip\"\r\n"
        "Content-Type: application/zip\r\n\r\n"
    ).encode() + b"\0" * size + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.worker
def test_the_live_server_answers_413_before_the_body_and_411_for_a_small_body_without_a_length(
    one_megabyte_limit, live_asgi, alice
):
    token = Token.objects.create(user=alice).key
    port = urlparse(live_asgi.url).port
    # Only the headers are sent: the answer comes without waiting for a byte of the body.
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST /api/datasets/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Token {token}\r\n"
                     f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {100 * LIMIT}\r\n\r\n".encode())
        answer = b""
        while b"}" not in answer:  # headers and body may come in separate packets
            chunk = sock.recv(4096)
            assert chunk, f"connection closed after {answer!r}"
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b'"code": "too_large"' in answer

    big, headers = multipart(2 * LIMIT)
    assert raw_post(live_asgi.url, token, headers, big) == (413, TOO_LARGE)  # a client that sends it all first
    assert raw_post(live_asgi.url, token, headers, big, chunked=True) == (413, TOO_LARGE)
    small, headers = multipart(1000)
    status, body = raw_post(live_asgi.url, token, headers, small, chunked=True)
    assert (status, body["code"]) == (411, "length_required")
