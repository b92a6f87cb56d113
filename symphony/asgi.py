"""ASGI entry point (daphne): Django for HTTP, Channels for the websockets.

Websockets need an API token (``Authorization: Bearer ...`` or ``?token=``), or
a logged-in session and an Origin among ALLOWED_HOSTS, so another site cannot
open them with a visitor's cookie (``symphony.ws_auth``).
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "symphony.settings")
# Set up Django (apps, settings) before importing anything that touches models.
django_application = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from executions.ws_urls import websocket_urlpatterns as execution_routes  # noqa: E402
from symphony.ws_auth import TokenOrSessionAuth  # noqa: E402
from workflows.ws_urls import websocket_urlpatterns as workflow_routes  # noqa: E402

# The executions' list ends with a catch-all that refuses any other path: it stays last.
websocket_urlpatterns = workflow_routes + execution_routes

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": TokenOrSessionAuth(URLRouter(websocket_urlpatterns)),
    }
)
