"""Reads for the workflow pages and their websocket: definitions, runs, step rows and history.

What the pages make of them is in ``workflows.presenters``.
"""

from django.db.models import Count, OuterRef, QuerySet, Subquery

from workflows.models import RunEvent, StepRun, WorkflowDefinition, WorkflowRun, WorkflowStatus, WorkflowVersion

RUNS_PER_PAGE = 50
# A run's history can hold tens of thousands of rows (one per step change); the page shows the newest.
HISTORY_SHOWN = 100


def definition_list() -> list[WorkflowDefinition]:
    """Every definition, each with ``latest``: its newest version (the one a start uses), or None."""
    newest = WorkflowVersion.objects.filter(definition=OuterRef("pk")).order_by("-number").values("pk")[:1]
    definitions = list(WorkflowDefinition.objects.annotate(latest_id=Subquery(newest)).order_by("name"))
    versions = WorkflowVersion.objects.in_bulk([definition.latest_id for definition in definitions])
    for definition in definitions:
        definition.latest = versions.get(definition.latest_id)
    return definitions


def run_list(
    *,
    status: str | None = None,
    before: int | None = None,
    limit: int = RUNS_PER_PAGE,
    runs: QuerySet[WorkflowRun] | None = None,
) -> list[WorkflowRun]:
    """Newest first, ``limit`` + 1 of them (the extra one says there is a next page): keyset paging on the id,
    which the (status, -id) index serves with or without a status. ``runs``: only these (what a user may see)."""
    runs = WorkflowRun.objects.all() if runs is None else runs
    # A version's spec can be megabytes; the list shows only its number.
    runs = runs.select_related("version__definition", "created_by").defer("version__spec").order_by("-id")
    if status:
        runs = runs.filter(status=status)
    if before:
        runs = runs.filter(id__lt=before)
    return list(runs[: limit + 1])


def run_status_counts(*, runs: QuerySet[WorkflowRun] | None = None) -> list[dict]:
    """Every status with how many of ``runs`` (default: all) are in it."""
    runs = WorkflowRun.objects.all() if runs is None else runs
    counts = dict(runs.order_by().values_list("status").annotate(n=Count("id")))
    return [
        {"status": status, "label": label, "count": counts.get(status, 0)} for status, label in WorkflowStatus.choices
    ]


def run_get(*, run_id: int) -> WorkflowRun | None:
    return WorkflowRun.objects.select_related("version__definition", "created_by").filter(pk=run_id).first()


def run_step_rows(*, run_id: int) -> dict[str, list[StepRun]]:
    """The run's current (not superseded) step rows by step id, items and iterations in order."""
    rows = StepRun.objects.filter(run_id=run_id, superseded=False).order_by("index", "iteration", "id")
    grouped: dict[str, list[StepRun]] = {}
    for row in rows.select_related("decided_by").defer("task"):
        grouped.setdefault(row.step_id, []).append(row)
    return grouped


def run_history(*, run_id: int, limit: int = HISTORY_SHOWN) -> tuple[list[RunEvent], int]:
    """The newest ``limit`` events, oldest first, and how many older ones were left out."""
    events = RunEvent.objects.filter(run_id=run_id)
    newest = list(events.select_related("actor").order_by("-id")[:limit])[::-1]
    omitted = events.filter(id__lt=newest[0].pk).count() if len(newest) == limit else 0
    return newest, omitted


def run_execution_ids(run_id: int) -> QuerySet[StepRun]:
    """The ids of every execution a run's steps submitted (superseded attempts included), as a subquery:
    the executions list's ``workflow`` filter (registered in ``WorkflowsConfig.ready``)."""
    return StepRun.objects.filter(run_id=run_id, execution__isnull=False).values("execution_id")
