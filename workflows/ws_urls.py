"""The workflow pages' websocket routes; ``symphony.asgi`` mounts them before the executions' catch-all."""

from django.urls import path

from workflows import consumers

websocket_urlpatterns = [
    path("ws/ui/workflows/runs/<row_id:run_id>/", consumers.WorkflowRunPageConsumer.as_asgi()),
]
