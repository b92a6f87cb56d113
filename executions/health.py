"""Is this installation able to run work? The checks behind ``GET /api/v1/health``.

Each check answers on its own, so one that fails does not hide the others:

- ``database``: a query on the default database;
- ``broker``: django-q2's broker as the workers use it, from the current
  settings: Redis answers a PING, or the ORM broker's queue table can be read;
- ``workers``: a worker cluster has said it is alive lately (``executions.heartbeats``);
- ``dispatcher``: a dispatcher has started a pass lately, judged against its
  interval (``SYMPHONY_DISPATCH_INTERVAL``).

The broker is pinged with a client of our own rather than django-q2's, whose
connection has no timeout: a health check must answer promptly when Redis is gone.
"""

import logging
import time
from collections.abc import Callable
from datetime import timedelta

import redis
from django.conf import settings
from django.db import connections
from django.utils import timezone

from executions.heartbeats import BEAT_SECONDS, MISSED_BEATS
from executions.models import Heartbeat, ProcessRole

logger = logging.getLogger(__name__)

OK, FAILING = "ok", "failing"
BROKER_TIMEOUT_SECONDS = 2.0


class CheckFailed(Exception):
    """What is wrong, in words that are safe to show anyone (no addresses, no exception text)."""


def check_database() -> dict:
    started = time.monotonic()
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return {"vendor": connections["default"].vendor, "ms": round((time.monotonic() - started) * 1000, 1)}


def check_broker() -> dict:
    cluster = settings.Q_CLUSTER
    if cluster.get("redis"):
        client = redis.Redis.from_url(
            cluster["redis"], socket_connect_timeout=BROKER_TIMEOUT_SECONDS, socket_timeout=BROKER_TIMEOUT_SECONDS
        )
        try:
            client.ping()
        finally:
            client.close()
        return {"broker": "redis"}
    if cluster.get("orm"):
        from django_q.models import OrmQ  # reads Q_CLUSTER when imported: after settings, as here

        OrmQ.objects.using(cluster["orm"]).exists()
        return {"broker": "orm", "database": cluster["orm"]}
    raise CheckFailed("Q_CLUSTER names no broker this check knows (redis or orm).")


def _fresh(role: str, stale_after: timedelta) -> tuple[int, float | None]:
    """How many processes of ``role`` beat within ``stale_after``, and the newest beat's age in seconds."""
    now = timezone.now()
    beats = Heartbeat.objects.filter(role=role)
    alive = beats.filter(beat_at__gte=now - stale_after).count()
    newest = beats.order_by("-beat_at").values_list("beat_at", flat=True).first()
    return alive, (now - newest).total_seconds() if newest is not None else None


def _age(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.0f} s ago"


def check_workers() -> dict:
    stale_after = timedelta(seconds=BEAT_SECONDS * MISSED_BEATS)
    alive, age = _fresh(ProcessRole.WORKER, stale_after)
    if not alive:
        raise CheckFailed(
            f"No worker cluster has reported in the last {stale_after.total_seconds():g} s "
            f"(last report: {_age(age)}); start one with `manage.py symphony worker`."
        )
    return {"alive": alive, "last_beat_seconds_ago": round(age, 1)}


def check_dispatcher() -> dict:
    interval = settings.SYMPHONY_DISPATCH_INTERVAL
    stale_after = timedelta(seconds=max(interval, BEAT_SECONDS) * MISSED_BEATS)
    alive, age = _fresh(ProcessRole.DISPATCHER, stale_after)
    if not alive:
        raise CheckFailed(
            f"No dispatcher has started a pass in the last {stale_after.total_seconds():g} s "
            f"(last: {_age(age)}; it passes every {interval:g} s); start one with `manage.py symphony dispatcher`."
        )
    return {"alive": alive, "last_pass_seconds_ago": round(age, 1), "interval_seconds": interval}


CHECKS: dict[str, Callable[[], dict]] = {
    "database": check_database,
    "broker": check_broker,
    "workers": check_workers,
    "dispatcher": check_dispatcher,
}


def run_check(name: str, check: Callable[[], dict], *, with_errors: bool) -> dict:
    """``{"status": "ok", ...}`` or ``{"status": "failing", "detail": ...}``; never raises.

    An unexpected error's text is shown only ``with_errors`` (to staff): it can name hosts and ports.
    """
    try:
        return {"status": OK, **check()}
    except CheckFailed as exc:
        return {"status": FAILING, "detail": str(exc)}
    except Exception as exc:
        logger.warning("Health check %s failed: %s: %s", name, type(exc).__name__, exc)
        result = {"status": FAILING, "detail": f"The {name} check failed ({type(exc).__name__}); see the server log."}
        if with_errors:
            result["error"] = f"{type(exc).__name__}: {exc}"
        return result


def health_report(*, with_errors: bool = False) -> tuple[bool, dict]:
    """Whether every check passes, and each check's answer by name."""
    checks = {name: run_check(name, check, with_errors=with_errors) for name, check in CHECKS.items()}
    return all(check["status"] == OK for check in checks.values()), checks
