"""Which execution a worker runs next, and the claim that makes it its own.

A claim is the ``QUEUED -> PREPARING`` transition (a compare-and-set) with a
lease, taken in one transaction that also checks the concurrency limits: the
agent's ``max_concurrency`` and, for an execution in a concurrency group (a
batch, a workflow's map step), the group's ``max_concurrent``; both apply at
once. Order: higher priority first, then longest waiting. An execution whose
agent or group is at its limit is passed over; it stays QUEUED and starts as
slots free (the worker that frees a slot goes on claiming).

PostgreSQL: the candidate row is locked with ``FOR UPDATE SKIP LOCKED`` so
workers do not all contend for the same row, then the agent row and the group
row, always in that order, so two claims cannot both take a last slot (and
never wait on each other in a cycle). SQLite: transactions are IMMEDIATE, so a
claim holds the write lock from its first read and the same checks are exact.
"""

import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from executions.models import ConcurrencyGroup, Execution
from executions.models import ExecutionState as S
from executions.state import ACTIVE, TransitionError, transition
from routing.models import AgentConfig

# A claim that loses races this many times in a row gives the worker back to django-q2.
MAX_TRIES = 5

ACTIVE_STATES = sorted(ACTIVE)
ACTIVE_PLACEHOLDERS = ", ".join(["%s"] * len(ACTIVE_STATES))
EXECUTIONS = Execution._meta.db_table
AGENTS = AgentConfig._meta.db_table
GROUPS = ConcurrencyGroup._meta.db_table

# "Ready" in one place: QUEUED, due, and both the agent and the group (if any) have a free
# slot (no limit, or fewer executions PREPARING or RUNNING than its max_concurrency or
# max_concurrent). Written as SQL by hand because a worker runs it once per execution:
# the ORM took 1.6 ms to compile it, the database 0.02 ms to run it (SQLite, measured),
# which made it most of a no-op's cost. The group clause, measured with 10,000 executions
# (6,500 QUEUED) in 20 groups: +0.01 ms on SQLite, +0.4 ms on PostgreSQL; with every queued
# execution behind a full group (a long batch) the scan finds nothing in 22 ms on SQLite, as
# the agent clause does in 15 ms when every agent is full. An uncorrelated "full groups"
# subquery did better there (3 ms) but scanned every grouped execution ever, on every claim.
READY = f"""
    x.state = %s
    AND (x.not_before IS NULL OR x.not_before <= %s)
    AND NOT EXISTS (
        SELECT 1 FROM {AGENTS} a
        WHERE a.id = x.agent_id AND a.max_concurrency > 0 AND a.max_concurrency <= (
            SELECT COUNT(*) FROM {EXECUTIONS} r WHERE r.agent_id = a.id AND r.state IN ({ACTIVE_PLACEHOLDERS})
        )
    )
    AND NOT EXISTS (
        SELECT 1 FROM {GROUPS} g
        WHERE g.id = x.concurrency_group_id AND g.max_concurrent > 0 AND g.max_concurrent <= (
            SELECT COUNT(*) FROM {EXECUTIONS} r
            WHERE r.concurrency_group_id = g.id AND r.state IN ({ACTIVE_PLACEHOLDERS})
        )
    )
"""


def _sql_time(value):
    return Execution._meta.get_field("not_before").get_db_prep_value(value, connection)


def _ready_params(now) -> list:
    """The values of READY's placeholders, in order."""
    return [S.QUEUED, _sql_time(now), *ACTIVE_STATES, *ACTIVE_STATES]


def ready_ids(*, now=None, execution_id: int | None = None, lock: bool = False, limit: int = 1) -> list[int]:
    """Ids of ready executions, most urgent first (higher priority, then longest waiting)."""
    params = _ready_params(now or timezone.now())
    only = ""
    if execution_id is not None:
        only, params = "AND x.id = %s", [*params, execution_id]
    skip = "FOR UPDATE OF x SKIP LOCKED" if lock and connection.features.has_select_for_update_skip_locked else ""
    sql = f"SELECT x.id FROM {EXECUTIONS} x WHERE {READY} {only} ORDER BY x.priority DESC, x.queued_at, x.id"
    with connection.cursor() as cursor:
        cursor.execute(f"{sql} LIMIT {int(limit)} {skip}", params)
        return [row[0] for row in cursor.fetchall()]


def has_ready_work(now=None) -> bool:
    return bool(ready_ids(now=now))


def waiting_too_long(*, since) -> bool:
    """Whether an execution has been ready (queued and due) since before ``since`` without being claimed."""
    params = [*_ready_params(timezone.now()), _sql_time(since)]
    sql = f"SELECT 1 FROM {EXECUTIONS} x WHERE {READY} AND COALESCE(x.not_before, x.queued_at) <= %s LIMIT 1"
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone() is not None


def _has_free_slot(agent: AgentConfig) -> bool:
    if not agent.max_concurrency:
        return True
    # Serialises claims for this agent on PostgreSQL; the count below then sees every committed claim.
    AgentConfig.objects.select_for_update().filter(pk=agent.pk).values_list("pk", flat=True).first()
    active = Execution.objects.filter(agent_id=agent.pk, state__in=ACTIVE).count()
    return active < agent.max_concurrency


def _group_has_free_slot(group: ConcurrencyGroup | None) -> bool:
    if group is None or not group.max_concurrent:
        return True
    # Serialises claims for this group, as the agent row does for its agent. NO KEY: a submit
    # adding executions to the group (an insert referencing this row) need not wait for claims.
    ConcurrencyGroup.objects.select_for_update(no_key=True).filter(pk=group.pk).values_list("pk", flat=True).first()
    active = Execution.objects.filter(concurrency_group_id=group.pk, state__in=ACTIVE).count()
    return active < group.max_concurrent


def claim(*, owner: str, execution_id: int | None = None) -> Execution | None:
    """Claim the most urgent ready execution (or exactly ``execution_id``) for ``owner``.

    Returns it in PREPARING with the task and agent loaded, or None when
    nothing can be claimed now.
    """
    claimed = claim_many(owners=iter([owner]), limit=1, execution_id=execution_id)
    return claimed[0] if claimed else None


def claim_many(
    *,
    owners: Iterator[str],
    limit: int,
    execution_id: int | None = None,
    prepare: Callable[[Execution], Any] | None = None,
) -> list[Execution]:
    """Claim up to ``limit`` ready executions, most urgent first, in one transaction.

    Each gets the next owner from ``owners`` (a lease owner is unique per claim).
    An execution whose agent or group filled up with the claims before it is
    passed over, exactly as another worker's claim would have been. Returns them
    in PREPARING with their task and agent loaded.

    ``prepare(execution)``, if given, is called for each claimed execution in the
    same transaction and its answer kept as ``execution.prepared``: the worker
    builds the agent there and records RUNNING, so a claim and a start cost one
    commit, not two (the history still has both transitions).
    """
    lease = timezone.timedelta(seconds=settings.SYMPHONY_LEASE_SECONDS)
    for _ in range(MAX_TRIES):
        # Taken before the lease's expiry time is computed: the worker's clock for the lease
        # then errs on the safe side (it believes the lease ends a little earlier than it does).
        taken_at = time.monotonic()
        now = timezone.now()
        claimed = []
        with transaction.atomic():
            ids = ready_ids(now=now, execution_id=execution_id, lock=True, limit=limit)
            if not ids:
                return []
            candidates = Execution.objects.select_related("task", "agent", "concurrency_group").in_bulk(ids)
            for pk in ids:
                execution = candidates[pk]
                if not (_has_free_slot(execution.agent) and _group_has_free_slot(execution.concurrency_group)):
                    continue
                owner = next(owners)
                try:
                    transition(
                        execution.pk,
                        S.PREPARING,
                        expected=[S.QUEUED],
                        # the attempt we read is the attempt we claim, not a later requeue of it
                        where={"attempt": execution.attempt},
                        fields={"lease_owner": owner, "lease_expires_at": now + lease},
                        data={"worker": owner},
                    )
                except TransitionError:
                    continue
                execution.state_written(S.PREPARING)
                execution.lease_owner, execution.lease_taken_at = owner, taken_at
                if prepare is not None:
                    execution.prepared = prepare(execution)
                claimed.append(execution)
        if claimed:
            return claimed
    return []
