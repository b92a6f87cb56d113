"""Which execution a worker runs next, and the claim that makes it its own.

A claim is the ``QUEUED -> PREPARING`` transition (a compare-and-set) with a
lease, taken in one transaction that also checks the agent's concurrency limit.
Order: higher priority first, then longest waiting. An agent at its
``max_concurrency`` is passed over; its executions stay QUEUED and start as
slots free (the worker that frees a slot goes on claiming).

PostgreSQL: the candidate row is locked with ``FOR UPDATE SKIP LOCKED`` so
workers do not all contend for the same row, and the agent row with ``FOR
UPDATE`` so two claims cannot both take its last slot. SQLite: transactions are
IMMEDIATE, so a claim holds the write lock from its first read and the same
checks are exact.
"""

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, QuerySet
from django.utils import timezone

from executions.models import Execution
from executions.models import ExecutionState as S
from executions.state import ACTIVE, TransitionError, transition
from routing.models import AgentConfig

# A claim that loses races this many times in a row gives the worker back to django-q2.
MAX_TRIES = 5


def saturated_agents() -> QuerySet:
    """Agents with a concurrency limit and as many executions active as it allows."""
    return (
        AgentConfig.objects.filter(max_concurrency__gt=0)
        .annotate(active=Count("executions", filter=Q(executions__state__in=ACTIVE)))
        .filter(active__gte=F("max_concurrency"))
        .values("pk")
    )


def ready_executions(now=None) -> QuerySet:
    """QUEUED executions that are due and whose agent has a free slot, most urgent first."""
    now = now or timezone.now()
    return (
        Execution.objects.filter(state=S.QUEUED)
        .filter(Q(not_before__isnull=True) | Q(not_before__lte=now))
        .exclude(agent_id__in=saturated_agents())
        .order_by("-priority", "queued_at", "id")
    )


def _has_free_slot(agent: AgentConfig) -> bool:
    if not agent.max_concurrency:
        return True
    # Serialises claims for this agent on PostgreSQL; the count below then sees every committed claim.
    AgentConfig.objects.select_for_update().filter(pk=agent.pk).values_list("pk", flat=True).first()
    active = Execution.objects.filter(agent_id=agent.pk, state__in=ACTIVE).count()
    return active < agent.max_concurrency


def claim(*, owner: str, execution_id: int | None = None) -> Execution | None:
    """Claim the most urgent ready execution (or exactly ``execution_id``) for ``owner``.

    Returns it in PREPARING with the task and agent loaded, or None when
    nothing can be claimed now.
    """
    lease = timezone.timedelta(seconds=settings.SYMPHONY_LEASE_SECONDS)
    for _ in range(MAX_TRIES):
        now = timezone.now()
        with transaction.atomic():
            candidates = ready_executions(now).select_related("task", "agent")
            if execution_id is not None:
                candidates = candidates.filter(pk=execution_id)
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True, of=("self",))
            execution = candidates.first()
            if execution is None:
                return None
            if not _has_free_slot(execution.agent):
                continue
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
        execution.state, execution.lease_owner = S.PREPARING, owner
        return execution
    return None


def has_ready_work(now=None) -> bool:
    return ready_executions(now).exists()
