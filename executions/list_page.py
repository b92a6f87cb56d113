"""The executions list page: its filters as read from a URL, and what its table shows.

The page, its HTMX swaps and its websocket (``consumers.ExecutionListConsumer``)
read the same query string with ``ExecutionFilterForm`` and build the same
context with ``list_context``, so a pushed update shows what a reload would.
A filtered view is its URL: the filters and the ``before`` cursor are GET
parameters, and the page works without JavaScript.
"""

from datetime import UTC, datetime, time, timedelta

from django import forms
from django.http import QueryDict
from django.utils import timezone

from executions import access
from executions.ids import ID_MAX
from executions.listing import Counts, ExecutionFilters, execution_page, state_counts
from executions.models import Execution
from executions.models import ExecutionState as S
from executions.search import MIN_CHARS
from routing.models import AgentConfig

PAGE_SIZE = 50
FILTER_FIELDS = ("state", "agent", "tag", "workflow", "created_from", "created_to", "submitted_by", "q")


class ExecutionFilterForm(forms.Form):
    q = forms.CharField(label="Search", min_length=MIN_CHARS, max_length=200, required=False, strip=True)
    state = forms.ChoiceField(label="State", choices=[("", "any state"), *S.choices], required=False)
    agent = forms.CharField(label="Agent", max_length=100, required=False)
    tag = forms.CharField(label="Tag", max_length=100, required=False)
    workflow = forms.IntegerField(label="Workflow run", min_value=1, max_value=ID_MAX, required=False)
    submitted_by = forms.CharField(label="Submitted by", max_length=150, required=False)
    created_from = forms.DateField(label="Created from (UTC)", required=False, widget=forms.DateInput({"type": "date"}))
    created_to = forms.DateField(label="to (UTC)", required=False, widget=forms.DateInput({"type": "date"}))
    before = forms.IntegerField(min_value=1, max_value=ID_MAX, required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        # Its own ids: the submit form beside it has an "agent" too.
        super().__init__(*args, auto_id="filter_%s", **kwargs)

    def filters(self) -> ExecutionFilters:
        """What was asked for; a field that does not read (a bad date, a word for a number) filters nothing."""
        self.is_valid()
        data = self.cleaned_data
        day_from, day_to = data.get("created_from"), data.get("created_to")
        return ExecutionFilters(
            states=(data["state"],) if data.get("state") else (),
            agent=data.get("agent", ""),
            tag=data.get("tag", ""),
            workflow=data.get("workflow"),
            submitted_by=data.get("submitted_by", ""),
            # Whole UTC days, the "to" day included.
            created_after=datetime.combine(day_from, time(), UTC) if day_from else None,
            created_before=datetime.combine(day_to + timedelta(days=1), time(), UTC) if day_to else None,
            text=data.get("q", ""),
        )

    def cursor(self) -> int | None:
        self.is_valid()
        return self.cleaned_data.get("before")


def _query(params: QueryDict, **changes) -> str:
    """``params`` as a query string with only the filters (and ``changes``) in it: empty ones left out."""
    query = QueryDict(mutable=True)
    for name in (*FILTER_FIELDS, "before"):
        value = changes[name] if name in changes else params.get(name, "")
        if value not in ("", None):
            query[name] = value
    return query.urlencode()


def _span(seconds: float) -> str:
    """A duration as a person reads it: "0.4 s", "12 s", "3 min 4 s", "2 h 5 min", "3 d 4 h"."""
    if seconds < 10:
        return f"{max(seconds, 0):.1f} s"
    whole = int(seconds)
    for unit, size, smaller, smaller_size in (("d", 86400, "h", 3600), ("h", 3600, "min", 60), ("min", 60, "s", 1)):
        if whole >= size:
            rest = (whole % size) // smaller_size
            return f"{whole // size} {unit}" + (f" {rest} {smaller}" if rest else "")
    return f"{whole} s"


def with_times(executions: list[Execution], now: datetime) -> list[Execution]:
    """Each execution with ``waited`` (queued or created until started, or until now while it waits)
    and ``ran`` (started until finished, or "running for" until now) as text; empty when not known."""
    for execution in executions:
        queued = execution.queued_at or execution.created_at
        execution.waited = ""
        execution.ran = ""
        execution.still_running = False
        if execution.started_at:
            execution.waited = _span((execution.started_at - queued).total_seconds())
            end = execution.finished_at
            execution.still_running = end is None and not execution.is_finished
            if end or execution.still_running:
                execution.ran = _span(((end or now) - execution.started_at).total_seconds())
        elif not execution.is_finished:
            execution.waited = _span((now - queued).total_seconds())
    return executions


def list_context(user, params: QueryDict) -> dict:
    """The table, the counts and the paging links of the list for ``user`` at the URL's ``params``."""
    form = ExecutionFilterForm(params)
    filters, before = form.filters(), form.cursor()
    visible = access.executions_visible_to(user)
    page = execution_page(visible, filters, before=before, size=PAGE_SIZE)
    counts: Counts = state_counts(visible, filters)
    chosen_state = filters.states[0] if filters.states else ""
    return {
        "executions": with_times(page.items, timezone.now()),
        "counts": counts,
        "filtered": filters.chosen,
        "state_filter": chosen_state,
        "state_links": [
            {"item": s, "query": _query(params, state=s.state, before=None), "current": s.state == chosen_state}
            for s in counts.states
        ],
        "all_states_query": _query(params, state=None, before=None),
        "before": before,
        "older_query": _query(params, before=page.next_before) if page.next_before else "",
        "newest_query": _query(params, before=None) if before else "",
        "query": _query(params),
        "filter_form": form,
    }


def agent_names() -> list[str]:
    """For the agent filter's suggestions."""
    return list(AgentConfig.objects.order_by("name").values_list("name", flat=True))
