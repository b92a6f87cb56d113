"""Reads for the pages, the websocket consumers and anyone else who needs more than a ``get()``.

What the pages make of them is in ``presenters``.
"""

from collections.abc import Iterable

from django.db.models import BooleanField, CharField, Func, JSONField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from executions.models import EventKind, Execution, ExecutionEvent, Task
from executions.models import ExecutionState as S
from executions.storable import StorableJSONDecoder
from routing.models import AgentConfig

LIST_LIMIT = 100
# Beyond this many log/output events the page shows the newest and says how many it left out.
PAGE_LOG_EVENTS = 300
# Events carrying text for the log panel; "output" is streamed model output, appended inline.
LOG_KINDS = (EventKind.LOG, EventKind.OUTPUT)


def execution_get(*, execution_id: int) -> Execution | None:
    return Execution.objects.select_related("task", "agent").filter(pk=execution_id).first()


def execution_submitters(*, execution_ids: Iterable[int]) -> dict[int, int | None]:
    """Execution id -> the id of the user who submitted it (None: nobody did), for those that exist."""
    return dict(Execution.objects.filter(pk__in=list(execution_ids)).values_list("pk", "submitted_by_id"))


def execution_events_after(*, execution_id: int, after_id: int, limit: int = 500) -> list[ExecutionEvent]:
    """The execution's events with ids above ``after_id``, oldest first: a reconnecting client's catch-up."""
    return list(ExecutionEvent.objects.filter(execution_id=execution_id, id__gt=after_id).order_by("id")[:limit])


def execution_log_events_after(
    *, execution_id: int, after_id: int, up_to_id: int | None = None, limit: int = 500
) -> list[ExecutionEvent]:
    events = ExecutionEvent.objects.filter(execution_id=execution_id, id__gt=after_id, kind__in=LOG_KINDS)
    if up_to_id is not None:
        events = events.filter(id__lte=up_to_id)
    return list(events.order_by("id")[:limit])


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
    """The state changes, each with the user who asked for it (``actor``) when a person did."""
    events = ExecutionEvent.objects.filter(execution_id=execution_id, kind=EventKind.STATE).select_related("actor")
    return list(events.order_by("id"))


RERUNS_SHOWN = 20


def execution_reruns(*, execution_id: int, executions: QuerySet[Execution] | None = None) -> list[Execution]:
    """The newest re-runs of an execution among ``executions`` (pass what the user may see):
    ``RERUNS_SHOWN`` of them, and one more when there are more."""
    executions = Execution.objects.all() if executions is None else executions
    return list(executions.filter(rerun_of_id=execution_id).order_by("-id")[: RERUNS_SHOWN + 1])


def agents_enabled() -> QuerySet[AgentConfig]:
    return AgentConfig.objects.filter(enabled=True).order_by("name")


# Tasks -------------------------------------------------------------------------------------
#
# A task's status is PENDING until its first execution, then its latest execution's state
# (the highest id: executions are created in order, and a retry is a new attempt of the same
# execution). It is read from the executions, never stored on the task.


def task_status(*, task: Task) -> str:
    state = Execution.objects.filter(task=task).order_by("-id").values_list("state", flat=True).first()
    return state or S.PENDING


def tasks_with_outcome() -> QuerySet[Task]:
    """Tasks with their latest execution's outcome as columns: ``status`` (else PENDING), ``output`` and ``error``."""
    latest = Execution.objects.filter(task=OuterRef("pk")).order_by("-id")
    stored_json = JSONField(decoder=StorableJSONDecoder)
    return Task.objects.annotate(
        status=Coalesce(Subquery(latest.values("state")[:1]), Value(S.PENDING), output_field=CharField()),
        output=Subquery(latest.values("result")[:1], output_field=stored_json),
        error=Subquery(latest.values("error")[:1], output_field=stored_json),
    )


def task_get(*, task_id: int) -> Task | None:
    return tasks_with_outcome().filter(pk=task_id).first()


class JSONListHolds(Func):
    """True when a JSON list column holds the text ``value``, in SQL on either database.

    Django's ``contains`` lookup on a JSONField is PostgreSQL-only; SQLite needs ``json_each``.
    """

    output_field = BooleanField()

    def __init__(self, column: str, value: str):
        super().__init__(column, Value(value))

    def _operands(self, compiler) -> tuple[str, str, tuple]:
        column, value = (compiler.compile(expression) for expression in self.source_expressions)
        return column[0], value[0], (*column[1], *value[1])

    def as_sql(self, compiler, connection, **extra):
        column, value, params = self._operands(compiler)
        return f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value = {value})", params

    def as_postgresql(self, compiler, connection, **extra):
        column, value, params = self._operands(compiler)
        return f"({column} @> jsonb_build_array({value}::text))", params


def task_list(
    *,
    name: str | None = None,
    tags: Iterable[str] | str | None = None,
    status: str | None = None,
    limit: int = LIST_LIMIT,
) -> list[Task]:
    """Newest first, with their outcome (``tasks_with_outcome``), in one query: the tasks whose name
    contains ``name`` (in any case), that carry every one of ``tags``, and whose status is ``status``."""
    tasks = tasks_with_outcome().order_by("-id")
    if name:
        tasks = tasks.filter(name__icontains=name)
    for tag in [tags] if isinstance(tags, str) else dict.fromkeys(tags or ()):
        tasks = tasks.filter(JSONListHolds("tags", str(tag)))
    if status:
        if status not in S.values:
            raise ValueError(f"Unknown task status {status!r}; use one of {', '.join(S.values)}.")
        tasks = tasks.filter(status=status)
    return list(tasks[:limit])
