"""Finding executions among millions: filters and keyset pages, shared by the API and the pages.

Pages are keyed on the id (newest first): ``before`` is the last id a client
saw, so a deep page costs what the first one does, where an ``OFFSET`` would
read every row it skips. Each filter has an index that leads with its column
and ends in the id, so the database walks it in order and stops at a page.
"""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from executions.models import Execution
from executions.models import ExecutionState as S
from executions.selectors import JSONListHolds

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass(frozen=True)
class ExecutionFilters:
    states: tuple[str, ...] = ()
    agent: str = ""
    tag: str = ""
    created_after: datetime | None = None
    created_before: datetime | None = None
    text: str = ""

    def __post_init__(self):
        unknown = [state for state in self.states if state not in S.values]
        if unknown:
            raise ValueError(f"Unknown state {unknown[0]!r}; use one of {', '.join(S.values)}.")

    def apply(self, executions: QuerySet[Execution]) -> QuerySet[Execution]:
        if self.states:
            executions = executions.filter(state__in=self.states)
        if self.agent:
            executions = executions.filter(agent__name=self.agent)
        if self.tag:
            executions = executions.filter(JSONListHolds("task__tags", self.tag))
        if self.created_after:
            executions = executions.filter(created_at__gte=self.created_after)
        if self.created_before:
            executions = executions.filter(created_at__lt=self.created_before)
        if self.text:
            executions = executions.filter(
                Q(task__name__icontains=self.text) | Q(task__description__icontains=self.text)
            )
        return executions


@dataclass(frozen=True)
class Page:
    items: list[Execution]
    next_before: int | None  # the ``before`` of the next (older) page; None on the last page


def execution_page(
    executions: QuerySet[Execution], filters: ExecutionFilters, *, before: int | None = None, size: int = PAGE_SIZE
) -> Page:
    """One page of ``executions`` matching ``filters``, newest first, older than id ``before``."""
    size = max(1, min(size, MAX_PAGE_SIZE))
    rows = filters.apply(executions).select_related("task", "agent", "submitted_by").order_by("-id")
    if before is not None:
        rows = rows.filter(id__lt=before)
    items = list(rows[: size + 1])
    more = len(items) > size
    items = items[:size]
    return Page(items=items, next_before=items[-1].pk if more else None)
