"""A worker's hold on the execution it runs, and database calls that outlive a database restart.

The lease is a time in the execution row (``lease_expires_at``) that the worker
pushes forward with each heartbeat; when it passes, the dispatcher gives the
execution to another worker. So the worker keeps its own clock of when the
lease ends, from the last renewal that reached the database: while it cannot
reach the database it does not know whether anyone else has, and it must have
stopped its agent before the lease can expire (``stop_by``), never after.
"""

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.utils import timezone

from executions.models import Execution
from executions.models import ExecutionState as S

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Errors that say "the database could not be reached or the connection broke", worth retrying
# on a new connection (SQLite's "database is locked" is an OperationalError too).
CONNECTION_ERRORS = (OperationalError, InterfaceError)
# Backoff between attempts to reach the database: doubling from FIRST up to MOST seconds.
FIRST_BACKOFF, MOST_BACKOFF = 0.1, 2.0


class DatabaseUnavailable(Exception):
    """The database did not answer before the caller's deadline."""


def reset_connection() -> None:
    """Drop this thread's broken connection; the next query opens a new one."""
    try:
        connection.close()
    except DatabaseError:
        pass  # closing a connection the server already dropped may fail too; it is gone either way


def with_reconnect(call: Callable[[], T], *, until: float, what: str) -> T:
    """``call()``, retried on a new connection with backoff while the database is unreachable.

    Raises ``DatabaseUnavailable`` once ``until`` (a ``time.monotonic()`` instant) has
    passed without an answer. Any other error, a refused transition included, is raised at once.
    """
    delay, failures = FIRST_BACKOFF, 0
    while True:
        try:
            result = call()
        except CONNECTION_ERRORS as exc:
            reset_connection()
            failures += 1
            if failures == 1:
                logger.warning("Database unreachable while trying to %s (%s); retrying", what, exc)
            remaining = until - time.monotonic()
            if remaining <= 0:
                raise DatabaseUnavailable(f"could not {what}: the database did not answer ({exc})") from exc
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, MOST_BACKOFF)
            continue
        if failures:
            logger.warning("Database reachable again: %s after %d failed tries", what, failures)
        return result


def limit_lock_wait(seconds: float | None) -> None:
    """On SQLite, how long this thread's next writes may wait for the write lock (None: as configured).

    A write blocked on another process's lock cannot be interrupted, so while an
    agent runs the wait is bounded by the lease clock: a lock held past the
    point where the agent must stop becomes an error the supervisor handles.
    """
    if connection.vendor != "sqlite":
        return
    if seconds is None:
        seconds = connection.settings_dict.get("OPTIONS", {}).get("timeout", 5)
    with connection.cursor() as cursor:
        cursor.execute(f"PRAGMA busy_timeout = {max(50, int(seconds * 1000))}")


@contextmanager
def lock_wait_until(until: float | None):
    """On SQLite, writes in the block wait for the write lock until ``until`` (monotonic) at most.

    ``None``: as configured. A worker running agents bounds every write this way by
    the earliest moment at which one of them must be stopped.
    """
    if until is None:
        yield
        return
    limit_lock_wait(until - time.monotonic())
    try:
        yield
    finally:
        try:
            limit_lock_wait(None)
        except CONNECTION_ERRORS:
            reset_connection()


class Lease:
    """The worker's own clock of its lease on one execution."""

    def __init__(self, execution_id: int, owner: str, *, taken_at: float):
        self.execution_id = execution_id
        self.owner = owner
        self.seconds = settings.SYMPHONY_LEASE_SECONDS
        self.renewed_at = taken_at
        # Stop the agent this long before the lease can end: time to cancel it (and, if it
        # ignores that, to end the process), plus a margin for a slow or starved machine.
        self.cancel_allowance = min(settings.SYMPHONY_CANCEL_GRACE_SECONDS, self.seconds * 0.25)
        self.margin = self.seconds * 0.1

    @property
    def expires(self) -> float:
        """When the lease may end (monotonic), judged from the last renewal known to have been written."""
        return self.renewed_at + self.seconds

    @property
    def stop_by(self) -> float:
        """When the agent must be told to stop if the lease has not been renewed by then."""
        return self.expires - self.cancel_allowance - self.margin

    @property
    def safe_until(self) -> float:
        """The last moment at which this worker may still be running the agent."""
        return self.expires - self.margin

    def renew(self) -> bool:
        """Push the lease forward; False if the execution is no longer ours (cancelled or reaped).

        Database errors are the caller's to handle: the clock only moves on a renewal that was written.
        """
        started = time.monotonic()
        renewed = Execution.objects.filter(pk=self.execution_id, state=S.RUNNING, lease_owner=self.owner).update(
            lease_expires_at=timezone.now() + timezone.timedelta(seconds=self.seconds)
        )
        if renewed:
            self.renewed_at = started
        return bool(renewed)


def renew_leases(leases: list[Lease]) -> set[int]:
    """Push every lease in ``leases`` forward in one statement; the ids of those still ours.

    One worker process holds a lease per execution it runs (up to its slots), so
    renewing them one by one would cost a write per execution per heartbeat.
    Owners are unique per claim, so the owner alone says whose a row is.
    """
    if not leases:
        return set()
    started = time.monotonic()
    expires = timezone.now() + timezone.timedelta(seconds=settings.SYMPHONY_LEASE_SECONDS)
    ids = [lease.execution_id for lease in leases]
    owners = [lease.owner for lease in leases]
    ours = Execution.objects.filter(pk__in=ids, state=S.RUNNING, lease_owner__in=owners)
    ours.update(lease_expires_at=expires)
    renewed = set(ours.filter(lease_expires_at=expires).values_list("pk", flat=True))
    for lease in leases:
        if lease.execution_id in renewed:
            lease.renewed_at = started
    return renewed
