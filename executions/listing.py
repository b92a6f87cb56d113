"""Finding executions among millions: filters, keyset pages and state counts, shared by the API and the pages.

Pages are keyed on the id (newest first): ``before`` is the last id a client
saw, so a deep page costs what the first one does, where an ``OFFSET`` would
read every row it skips. Each filter has an index that leads with its column
and ends in the id, so the database walks it in order and stops at a page.
Text search has an index of its own on each database (``executions.search``).

Counts never read a whole table: each state's count stops at ``COUNT_CAP``
and says so (``StateCount.more``), where PostgreSQL's planner then gives an
estimate of the rest (``StateCount.estimate``).
"""

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from django.db import connections
from django.db.models import QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from executions.ids import ID_MAX
from executions.models import Execution
from executions.models import ExecutionState as S
from executions.search import MIN_CHARS, newest_matches, text_matches
from executions.selectors import JSONListHolds

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Each state's count stops here: 9 states x 1,000 index entries stay well inside a page's time.
COUNT_CAP = 1_000

# A layer above (workflows) says which executions belong to a workflow run: given a run's
# id, a queryset of their ids (``values("execution_id")``), used as a subquery.
WorkflowMembers = Callable[[int], QuerySet]
_workflow_members: list[WorkflowMembers] = []


def register_workflow_members(members: WorkflowMembers) -> WorkflowMembers:
    """Let ``ExecutionFilters(workflow=<run id>)`` find a run's executions (once, from an AppConfig.ready)."""
    if members not in _workflow_members:
        _workflow_members.append(members)
    return members


@dataclass(frozen=True)
class ExecutionFilters:
    states: tuple[str, ...] = ()
    agent: str = ""
    tag: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    text: str = ""
    workflow: int | None = None  # a workflow run's id: the executions of its steps
    submitted_by: str = ""  # a username

    def __post_init__(self):
        unknown = [state for state in self.states if state not in S.values]
        if unknown:
            raise ValueError(f"Unknown state {unknown[0]!r}; use one of {', '.join(S.values)}.")
        if 0 < len(self.text) < MIN_CHARS:
            raise ValueError(f"Search for at least {MIN_CHARS} characters.")

    def apply(self, executions: QuerySet[Execution]) -> QuerySet[Execution]:
        if self.states:
            executions = executions.filter(state__in=self.states)
        return self.apply_all_but_state(executions)

    def apply_all_but_state(self, executions: QuerySet[Execution]) -> QuerySet[Execution]:
        if self.agent:
            executions = executions.filter(agent__name=self.agent)
        if self.tag:
            executions = executions.filter(JSONListHolds("task__tags", self.tag))
        # Dates become id bounds too (ids grow with creation times), so that the id-ordered
        # indexes serve a date range as they serve a page; the times themselves still decide.
        if after := self.created_after:
            executions = executions.filter(created_at__gte=after, id__gte=_first_created(after))
        if before := self.created_before:
            executions = executions.filter(created_at__lt=before, id__lt=_first_created(before))
        if self.submitted_by:
            executions = executions.filter(submitted_by__username=self.submitted_by)
        if self.workflow is not None:
            if not _workflow_members:
                return executions.none()
            for members in _workflow_members:
                executions = executions.filter(id__in=members(self.workflow))
        if self.text:
            executions = executions.filter(text_matches(self.text, using=executions.db))
        return executions

    @property
    def by_state_index(self) -> bool:
        """Can each state's matches be read in order along an index that leads with the state?"""
        return not (self.tag or self.text or self.workflow)

    @property
    def chosen(self) -> bool:
        """Is anything filtered at all?"""
        return self != ExecutionFilters()

    def without_states(self) -> "ExecutionFilters":
        return replace(self, states=())


def _first_created(at: datetime) -> Coalesce:
    """The id of the first execution created at or after ``at`` (one seek of the creation-time index);
    past the last id when there is none."""
    first = Execution.objects.filter(created_at__gte=at).order_by("created_at").values("id")[:1]
    return Coalesce(Subquery(first), Value(ID_MAX))


@dataclass(frozen=True)
class Page:
    items: list[Execution]
    next_before: int | None  # the ``before`` of the next (older) page; None on the last page


def execution_page(
    executions: QuerySet[Execution], filters: ExecutionFilters, *, before: int | None = None, size: int = PAGE_SIZE
) -> Page:
    """One page of ``executions`` matching ``filters``, newest first, older than id ``before``.

    A text search on SQLite reads a window of the newest matches (``search.newest_matches``);
    when the other filters leave less than a page of it, the page is short and ``next_before``
    goes on past the window.
    """
    size = max(1, min(size, MAX_PAGE_SIZE))
    window = newest_matches(filters.text, before=before, using=executions.db) if filters.text else None
    if window is not None:
        executions = executions.filter(id__in=window[0])
        filters = replace(filters, text="")
    rows = filters.apply(executions).select_related("task", "agent", "submitted_by").order_by("-id")
    if before is not None:
        rows = rows.filter(id__lt=before)
    items = list(rows[: size + 1])
    more = len(items) > size
    items = items[:size]
    if more:
        return Page(items=items, next_before=items[-1].pk)
    if window is not None and window[1]:
        return Page(items=items, next_before=window[0][-1])
    return Page(items=items, next_before=None)


@dataclass(frozen=True)
class StateCount:
    state: str
    label: str
    count: int  # exact unless ``more``: then more than this many
    more: bool = False


@dataclass(frozen=True)
class Counts:
    states: list[StateCount]
    matching: int  # of the chosen states (all when none is chosen): exact unless ``more``, then a floor
    more: bool
    estimate: int | None  # PostgreSQL's planner estimate, given when ``more``

    @property
    def shown(self) -> str:
        """ "N matching" as a reader should take it: "12", "≈ 80,000" or "more than 1,000"."""
        if not self.more:
            return f"{self.matching:,}"
        if self.estimate is not None and self.estimate > self.matching:
            return f"≈ {self.estimate:,}"
        return f"more than {self.matching:,}"


def state_counts(executions: QuerySet[Execution], filters: ExecutionFilters, *, cap: int | None = None) -> Counts:
    """How many of ``executions`` match ``filters`` in each state (the state filter aside): one query,
    and on PostgreSQL one ``EXPLAIN``. Never more than about ``cap`` rows per state are read.

    With filters that have an index by state (agent, submitter, who may see what),
    each state is counted up to ``cap + 1`` along its index: exact below the cap,
    "more than ``cap``" past it. Other filters (text, tag, dates, workflow) have no
    index by state: the newest ``cap + 1`` matches are counted by state instead,
    exact when there are no more, else each count is a floor (on SQLite a text
    search counts within its window of newest matches, ``search.newest_matches``). On PostgreSQL a
    total past the cap comes from the planner's row estimate, which reads no rows.
    """
    cap = COUNT_CAP if cap is None else cap
    window = newest_matches(filters.text, before=None, using=executions.db) if filters.text else None
    if window is not None:  # SQLite: counted among the newest matches
        executions = executions.filter(id__in=window[0])
        filters = replace(filters, text="")
    base = filters.without_states().apply_all_but_state(executions).order_by()
    connection = connections[base.db]
    if window is not None:
        states = _counted_among_newest(base, cap, older=window[1])
    elif filters.by_state_index:
        states = _counted_along_state_indexes(base, cap)
    else:
        states = _counted_among_newest(base, cap)
    chosen = [s for s in states if not filters.states or s.state in filters.states]
    more = any(s.more for s in chosen)
    estimate = None
    if connection.vendor == "postgresql":
        # Asked every time, so that the page's query count does not depend on the data.
        chosen_rows = base.filter(state__in=filters.states) if filters.states else base
        plan = json.loads(chosen_rows.values("id").explain(format="json"))
        estimate = int(plan[0]["Plan"]["Plan Rows"]) if more else None
    return Counts(states=states, matching=sum(s.count for s in chosen), more=more, estimate=estimate)


def _counted_along_state_indexes(base: QuerySet[Execution], cap: int) -> list[StateCount]:
    parts, params = [], []
    for state in S.values:
        sql, state_params = base.filter(state=state).values("id")[: cap + 1].query.sql_with_params()
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) capped)")
        params.extend(state_params)
    with connections[base.db].cursor() as cursor:
        cursor.execute(f"SELECT {', '.join(parts)}", params)
        found = list(cursor.fetchone())
    return [
        StateCount(state=state, label=label, count=min(n, cap), more=n > cap)
        for (state, label), n in zip(S.choices, found, strict=True)
    ]


def _counted_among_newest(base: QuerySet[Execution], cap: int, *, older: bool = False) -> list[StateCount]:
    newest = list(base.order_by("-id").values_list("state", flat=True)[: cap + 1])
    more = len(newest) > cap or older
    found = Counter(newest[:cap])
    return [StateCount(state=state, label=label, count=found[state], more=more) for state, label in S.choices]
