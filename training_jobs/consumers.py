"""Live training progress: `/ws/runs/{id}/` joins the run's group after an access check.

On connect the client gets the history so far (`run.history`), then every event the
worker sends to the group. Handlers are named after the event types and only forward.
"""
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from training_jobs import selectors

CLOSE_FORBIDDEN = 4403  # not logged in
CLOSE_NOT_FOUND = 4404  # no such run, or someone else's


class RunProgressConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        run_id = self.scope["url_route"]["kwargs"]["run_id"]
        if not await database_sync_to_async(selectors.run_visible_to)(user, run_id):
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.group_name = f"run_{run_id}"
        # Join first, read second: an event sent in between arrives after the history,
        # and the page drops epochs it already has.
        await self.channel_layer.group_add(self.group_name, self.channel_name)
        await self.accept()
        await self.send_json(await database_sync_to_async(selectors.run_history_event)(run_id))

    async def disconnect(self, code):
        if getattr(self, "group_name", None):
            await self.channel_layer.group_discard(self.group_name, self.channel_name)

    async def receive_json(self, content, **kwargs):
        # The stream is one-way; commands go through the REST API.
        pass

    async def run_status(self, event):
        await self.send_json(event)

    async def run_epoch(self, event):
        await self.send_json(event)

    async def run_batch(self, event):
        await self.send_json(event)

    async def run_progress(self, event):
        await self.send_json(event)
