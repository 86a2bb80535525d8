"""The web tier as a browser meets it: websocket limits that agree with the app's own."""
import asyncio
import json
from urllib.parse import urlparse

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore

from inference.wsclient import WebSocketClient

pytestmark = pytest.mark.worker


def session_cookie(user) -> str:
    session = SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


async def webcam_exchange(port, cookie, payloads):
    ws = await WebSocketClient.connect("127.0.0.1", port, "/ws/webcam/", {"Cookie": cookie})
    replies = [json.loads(await ws.recv())]  # ready
    for payload in payloads:
        await ws.send(payload)
        replies.append(json.loads(await ws.recv()))
    await ws.close()
    return replies


def test_a_frame_over_the_apps_limit_gets_the_apps_too_large_reply_not_a_dropped_socket(served_model, live_asgi, alice):
    port = urlparse(live_asgi.url).port
    oversized = b"\xff\xd8" + bytes(settings.FERWEB_MAX_FRAME_BYTES + 512 * 1024)
    replies = asyncio.run(webcam_exchange(port, session_cookie(alice), [oversized, json.dumps({"type": "ping"})]))
    assert replies[0]["type"] == "ready"
    assert replies[1]["type"] == "error" and replies[1]["error"] == "too_large"
    assert replies[2] == {"type": "pong"}  # the same socket goes on
