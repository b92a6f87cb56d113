"""Websocket routes, mounted by ``symphony.asgi`` behind the session and origin checks."""

from django.urls import path, re_path

from executions import consumers

websocket_urlpatterns = [
    path("ws/executions/<row_id:execution_id>/", consumers.ExecutionEventsConsumer.as_asgi()),
    path("ws/ui/executions/", consumers.ExecutionListConsumer.as_asgi()),
    path("ws/ui/executions/<row_id:execution_id>/", consumers.ExecutionPageConsumer.as_asgi()),
    # Last: any other path, an id no row can have included, is refused rather than an error in the router.
    re_path(r"^", consumers.RefusedConsumer.as_asgi()),
]
