"""Websocket routes, mounted by ``symphony.asgi`` behind the session and origin checks."""

from django.urls import path

from executions import consumers

websocket_urlpatterns = [
    path("ws/executions/<int:execution_id>/", consumers.ExecutionEventsConsumer.as_asgi()),
    path("ws/ui/executions/", consumers.ExecutionListConsumer.as_asgi()),
    path("ws/ui/executions/<int:execution_id>/", consumers.ExecutionPageConsumer.as_asgi()),
]
