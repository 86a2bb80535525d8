"""Websockets: /ws/webcam/ (live predictions) and /ws/jobs/{id}/ (job progress)."""
import asyncio
import json
import time

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from fercore.images import ImageDecodeError

from . import selectors, serving
from .engine import ModelUnavailable
from .tracking import IoUTracker

TEXT_MESSAGES = '{"type": "ping"}'  # the only text message; frames travel as binary messages


class WebcamConsumer(AsyncWebsocketConsumer):
    """Binary JPEG frames in, faces out; at most one frame of this client in the pipeline.

    A frame that arrives while the previous one is still being served is dropped with a
    `dropped` reply (the page sends one frame at a time, so this only guards misbehaving
    clients); when the shared pool is full the reply is `busy`. Nothing is stored.
    Whatever a client sends, it gets a reply and the socket stays open: a bad message gets
    `{"type": "error", "error": <code>, "message": ...}`.
    """

    # No channel layer: nothing is sent to a webcam socket from elsewhere, so it needs no Redis listener.
    channel_layer_alias = "no-channel-layer"

    async def connect(self):
        self.user = self.scope.get("user")
        if self.user is None or not self.user.is_authenticated:
            await self.close(code=4401)
            return
        self.in_flight = False
        self.tracker = IoUTracker(max_missed=3)
        self.task = None
        await self.accept()
        await self.send(text_data=json.dumps({"type": "ready"}))

    async def disconnect(self, code):
        if getattr(self, "task", None) is not None:
            self.task.cancel()

    async def receive(self, text_data=None, bytes_data=None):
        if bytes_data is None:
            await self.receive_text_message(text_data or "")
            return
        if self.in_flight:
            await self.send(text_data=json.dumps({"type": "dropped", "message": "A frame is already being served."}))
            return
        if len(bytes_data) > settings.FERWEB_MAX_FRAME_BYTES:
            await self.send_error("too_large", _too_large_message())
            return
        self.in_flight = True
        self.task = asyncio.ensure_future(self.serve(bytes_data, time.perf_counter()))

    async def receive_text_message(self, text: str):
        """Only {"type": "ping"} is understood; anything else is answered, never a reason to close."""
        if len(text.encode()) > settings.FERWEB_MAX_FRAME_BYTES:
            await self.send_error("too_large", _too_large_message())
            return
        try:
            message = json.loads(text)
        except ValueError:
            await self.send_error("bad_message", f"Text messages must be JSON, such as {TEXT_MESSAGES}; "
                                                 "send frames as binary JPEG messages.")
            return
        if not isinstance(message, dict):
            await self.send_error("bad_message", f"Text messages must be JSON objects, such as {TEXT_MESSAGES}.")
        elif message.get("type") == "ping":
            await self.send(text_data=json.dumps({"type": "pong"}))
        else:
            await self.send_error("bad_message", f"Unknown message type {message.get('type')!r}: the only text "
                                                 f"message is {TEXT_MESSAGES}; send frames as binary JPEG messages.")

    async def send_error(self, code: str, message: str):
        await self.send(text_data=json.dumps({"type": "error", "error": code, "message": message}))

    async def serve(self, frame: bytes, received: float):
        try:
            active = await database_sync_to_async(_active_model)(self.user)
            loop = asyncio.get_running_loop()
            reply = await loop.run_in_executor(serving.pool(), _predict, frame, active.path)
            if reply["type"] == "prediction":
                ids = self.tracker.update([face["box"] for face in reply["faces"]])
                for face, face_id in zip(reply["faces"], ids):
                    face["id"] = face_id
                reply["model_version"] = active.version
                reply["timing_ms"]["reply"] = round((time.perf_counter() - received) * 1000, 2)
            await self.send(text_data=json.dumps(reply))
        finally:
            self.in_flight = False


def _too_large_message() -> str:
    return f"Messages are limited to {settings.FERWEB_MAX_FRAME_BYTES // 1024} KB; send smaller JPEG frames."


def _active_model(user):
    return selectors.active_model_for(user)


def _predict(frame: bytes, model_path) -> dict:
    """Runs on the serving pool: the fast single-pass detector, one classifier call per frame."""
    try:
        with serving.admission():
            prediction = serving.predict_bytes(frame, model_path, thorough=False)
    except serving.Busy as exc:
        return {"type": "busy", "message": str(exc)}
    except ImageDecodeError as exc:
        return {"type": "error", "error": exc.code, "message": exc.message}
    except ModelUnavailable as exc:
        return {"type": "error", "error": exc.code, "message": str(exc)}
    return {"type": "prediction", "faces": prediction.faces, "message": prediction.message,
            "timing_ms": prediction.timing_ms}


class JobProgressConsumer(AsyncWebsocketConsumer):
    """Current status first, then every job.progress event of that job (owner or staff only)."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        job = await database_sync_to_async(_job_or_none)(user, self.scope["url_route"]["kwargs"]["pk"])
        if job is None:
            await self.close(code=4404)
            return
        self.group = job.group_name
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        from .services import job_event

        await self.send(text_data=json.dumps({"type": "job.progress", **job_event(job)}))

    async def disconnect(self, code):
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def job_progress(self, event):
        await self.send(text_data=json.dumps(event))


def _job_or_none(user, pk):
    from django.http import Http404

    try:
        return selectors.job_get_for(user, pk)
    except Http404:
        return None
