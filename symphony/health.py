"""``GET /api/v1/health``: public, for load balancers and monitors (the checks are ``executions.health``)."""

from django.http import HttpRequest
from ninja import Field, Router, Schema, Status

from executions.health import health_report

router = Router(tags=["health"])


class Check(Schema):
    """One check's answer; the fields other than ``status`` are there when they apply."""

    status: str = Field(..., description='"ok" or "failing".')
    detail: str | None = Field(None, description="What is wrong, when it fails.")
    error: str | None = Field(None, description="The error itself, shown to staff only (it may name hosts).")
    vendor: str | None = Field(None, description="database: sqlite or postgresql.")
    ms: float | None = Field(None, description="database: how long the query took.")
    broker: str | None = Field(None, description="broker: redis or orm.")
    database: str | None = Field(None, description="broker: the ORM broker's database alias.")
    alive: int | None = Field(None, description="workers, dispatcher: processes that reported lately.")
    last_beat_seconds_ago: float | None = Field(None, description="workers: the newest report's age.")
    last_pass_seconds_ago: float | None = Field(None, description="dispatcher: the newest pass's age.")
    interval_seconds: float | None = Field(None, description="dispatcher: SYMPHONY_DISPATCH_INTERVAL.")


class HealthOut(Schema):
    status: str = Field(..., description='"ok" when every check passes, else "failing".', examples=["ok"])
    checks: dict[str, Check] = Field(..., description="database, broker, workers and dispatcher.")


@router.get("/health", auth=None, response={200: HealthOut, 503: HealthOut}, exclude_none=True, summary="Health check")
def health(request: HttpRequest):
    """200 when the database and the broker answer and a worker cluster and a dispatcher are alive;
    503 otherwise, with what is wrong. Needs no authentication; staff see the errors' own text."""
    user = getattr(request, "user", None)
    healthy, checks = health_report(with_errors=bool(user and user.is_active and user.is_staff))
    return Status(200 if healthy else 503, {"status": "ok" if healthy else "failing", "checks": checks})
