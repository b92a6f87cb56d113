"""The JSON API at ``/api/v1/``: each app's ninja router, one authentication, one error format.

Every operation is a thin adapter over the same services and selectors as the
pages (``executions/api.py``, ``routing/api.py``, ``workflows/api.py``). A
request is authenticated by a personal API token (``Authorization: Bearer``,
exempt from CSRF) or by the browser's session (unsafe methods then need the CSRF
token, as on the pages); errors are ``application/problem+json``
(``symphony.problems``); each token and each user is throttled.
"""

import hashlib
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest
from ninja import NinjaAPI
from ninja.errors import AuthenticationError
from ninja.security import HttpBearer, SessionAuth
from ninja.throttling import AuthRateThrottle, UserRateThrottle

from executions.api import router as executions_router
from executions.routing_api import router as routing_router
from routing.api import router as agents_router
from symphony import problems
from symphony.health import router as health_router
from symphony.tokens import user_for_token
from workflows.api import router as workflows_router


@dataclass(frozen=True)
class TokenHolder:
    """``request.auth`` of a token request: throttled per token, not per user."""

    user: object
    digest: str

    def __str__(self) -> str:
        return f"token:{self.digest}"


class TokenAuth(HttpBearer):
    openapi_scheme = "bearer"

    def authenticate(self, request: HttpRequest, token: str) -> TokenHolder:
        user = user_for_token(token)
        if user is None:
            # A token that was presented and is wrong fails: no falling back to the session.
            raise AuthenticationError(message="The API token is unknown, expired or revoked.")
        request.user = user
        return TokenHolder(user=user, digest=hashlib.sha256(token.encode()).hexdigest()[:32])


PROBLEM_SCHEMA = {
    "title": "Problem",
    "description": "An error (RFC 9457). Validation errors list each field in `errors`.",
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "loc": {"type": "array", "items": {"type": "string"}},
                    "msg": {"type": "string"},
                    "type": {"type": "string"},
                },
            },
        },
    },
    "required": ["type", "title", "status", "detail"],
}


class SymphonyAPI(NinjaAPI):
    def get_openapi_operation_id(self, operation) -> str:
        # "execution_submit" rather than ninja's module-prefixed default: what a client generator shows.
        return operation.view_func.__name__

    def get_openapi_schema(self, *args, **kwargs):
        """ninja's schema, plus what every operation may answer: a problem for any 4xx."""
        schema = super().get_openapi_schema(*args, **kwargs)
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
        problem = {
            "description": "The request was refused; `detail` says why.",
            "content": {problems.CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                operation.setdefault("responses", {}).setdefault("4XX", problem)
        return schema


api = SymphonyAPI(
    title="Symphony API",
    version="1",
    description="Submit tasks to AI agents, watch their executions, run workflows. "
    "Authenticate with `Authorization: Bearer <token>` (create one at /tokens/ or with "
    "`manage.py symphony token create --user NAME`).",
    urls_namespace="api",
    auth=[TokenAuth(), SessionAuth()],
    throttle=[
        AuthRateThrottle(settings.SYMPHONY_API_RATE_PER_TOKEN),
        UserRateThrottle(settings.SYMPHONY_API_RATE_PER_USER),
    ],
)
problems.install(api)
api.add_router("/", executions_router)
api.add_router("/", agents_router)
api.add_router("/", routing_router)
api.add_router("/", workflows_router)
api.add_router("/", health_router)
