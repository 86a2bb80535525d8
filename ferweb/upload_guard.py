"""The request-size limit, enforced in front of Django on the raw ASGI stream.

Django reads a request body in full (to a spooled temporary file) before any view or
middleware runs, so a limit checked there comes after the upload has been received.
This guard answers 413 from the Content-Length header before a byte of the body is
read, and for bodies without a length (chunked) it counts bytes as they arrive and
answers 413 the moment the count passes the limit, telling Django the client left.
"""
import json

from django.conf import settings

from ferweb.api_errors import error_body


def _limit_for(path: str) -> int:
    """Photos for /api/predict/ have a lower limit than dataset and job uploads."""
    if path.startswith("/api/predict/"):
        return settings.FERWEB_MAX_IMAGE_BYTES + 64 * 1024  # the image plus the multipart framing
    return settings.FERWEB_MAX_UPLOAD_BYTES


def _content_length(scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def too_large_body(limit: int) -> bytes:
    megabytes = limit / (1024 * 1024)
    return json.dumps(error_body("too_large", f"Upload too large: the limit is {megabytes:.3g} MB.")).encode()


async def send_413(send, limit: int) -> None:
    body = too_large_body(limit)
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })
    await send({"type": "http.response.body", "body": body})


class UploadGuard:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = _limit_for(scope["path"])
        length = _content_length(scope)
        if length is not None and length > limit:
            return await send_413(send, limit)
        return await self.app(scope, *self._metered(receive, send, limit))

    @staticmethod
    def _metered(receive, send, limit: int):
        state = {"received": 0, "refused": False}

        async def counting_receive():
            message = await receive()
            if message["type"] == "http.request" and not state["refused"]:
                state["received"] += len(message.get("body", b""))
                if state["received"] > limit:
                    state["refused"] = True
                    await send_413(send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not state["refused"]:  # after our 413, Django's own answer has nowhere to go
                await send(message)

        return counting_receive, guarded_send
