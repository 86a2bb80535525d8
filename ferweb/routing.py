"""Websocket routes of every app, gathered in one list for the ASGI router."""
from inference.routing import websocket_urlpatterns as inference_ws
from training_jobs.routing import websocket_urlpatterns as training_ws

websocket_urlpatterns = [*training_ws, *inference_ws]
