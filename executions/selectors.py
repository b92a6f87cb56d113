"""Reads for the pages, the websocket consumers and anyone else who needs more than a ``get()``.

What the pages make of them is in ``presenters``.
"""

from django.db.models import Count, QuerySet

from executions.models import EventKind, Execution, ExecutionEvent
from executions.models import ExecutionState as S
from routing.models import AgentConfig

LIST_LIMIT = 100
# Beyond this many log/output events the page shows the newest and says how many it left out.
PAGE_LOG_EVENTS = 300
# Events carrying text for the log panel; "output" is streamed model output, appended inline.
LOG_KINDS = (EventKind.LOG, EventKind.OUTPUT)


def execution_list(*, state: str | None = None, limit: int = LIST_LIMIT) -> list[Execution]:
    executions = Execution.objects.select_related("task", "agent").order_by("-id")
    if state:
        executions = executions.filter(state=state)
    return list(executions[:limit])


def execution_state_counts() -> list[dict]:
    """Every state in lifecycle order, with its label and how many executions are in it (zero included)."""
    counts = dict(Execution.objects.order_by().values_list("state").annotate(n=Count("id")))
    return [{"state": state, "label": label, "count": counts.get(state, 0)} for state, label in S.choices]


def execution_get(*, execution_id: int) -> Execution | None:
    return Execution.objects.select_related("task", "agent").filter(pk=execution_id).first()


def execution_exists(*, execution_id: int) -> bool:
    return Execution.objects.filter(pk=execution_id).exists()


def execution_events_after(*, execution_id: int, after_id: int, limit: int = 500) -> list[ExecutionEvent]:
    """The execution's events with ids above ``after_id``, oldest first: a reconnecting client's catch-up."""
    return list(ExecutionEvent.objects.filter(execution_id=execution_id, id__gt=after_id).order_by("id")[:limit])


def execution_log_events_after(*, execution_id: int, after_id: int, limit: int = 500) -> list[ExecutionEvent]:
    return list(
        ExecutionEvent.objects.filter(execution_id=execution_id, id__gt=after_id, kind__in=LOG_KINDS).order_by("id")[
            :limit
        ]
    )


def execution_last_event_id(*, execution_id: int) -> int:
    last = ExecutionEvent.objects.filter(execution_id=execution_id).order_by("-id").values_list("id", flat=True)
    return last.first() or 0


def execution_log_tail(*, execution_id: int, up_to_id: int) -> tuple[list[ExecutionEvent], int]:
    """The newest log events up to ``up_to_id``, oldest first, and how many older ones were left out."""
    events = ExecutionEvent.objects.filter(execution_id=execution_id, kind__in=LOG_KINDS, id__lte=up_to_id)
    tail = list(events.order_by("-id")[:PAGE_LOG_EVENTS])[::-1]
    omitted = events.filter(id__lt=tail[0].pk).count() if len(tail) == PAGE_LOG_EVENTS else 0
    return tail, omitted


def execution_history(*, execution_id: int) -> list[ExecutionEvent]:
    return list(ExecutionEvent.objects.filter(execution_id=execution_id, kind=EventKind.STATE).order_by("id"))


def agents_enabled() -> QuerySet[AgentConfig]:
    return AgentConfig.objects.filter(enabled=True).order_by("name")
