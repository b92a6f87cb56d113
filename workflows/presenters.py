"""What the workflow pages and their live pushes show: a run's steps, its picture, history and controls.

Reads stay in ``workflows.selectors``; this module shapes what they return for
the templates. The run page and every websocket push render the same partials
from ``run_page``, so a push shows exactly what a reload would.
"""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.urls import reverse

from executions.presenters import error_summary, pretty_json, render_text
from workflows import dag, selectors
from workflows.access import may_approve
from workflows.engine import spec_of, step_outcome
from workflows.models import RUN_FINISHED, STEP_ENDED, RunEvent, RunEventKind, StepRun, WorkflowRun, WorkflowStatus
from workflows.spec import StepSpec

NOT_STARTED = "NOT_STARTED"
PREVIEW_CHARS = 120
# The step table of a run with thousands of steps lists this many (in order) and counts the rest by state.
STEP_TABLE_SHOWN = 500
# Every partial of the run page that follows the run; the websocket pushes them all.
# How the history says what someone did.
ACTIONS_DONE = {
    "start": "started",
    "create": "created",
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
    "approve": "approved",
    "reject": "rejected",
    "rerun": "re-ran from",
}
RUN_PANELS = ("run-header", "run-decisions", "run-dag", "run-steps", "run-io", "run-rerun", "run-history")


@dataclass
class StepView:
    """One step of a run as the page shows it."""

    id: str
    kind: str
    depends_on: tuple[str, ...] = ()
    state: str = NOT_STARTED
    detail: str = ""
    execution_id: int | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output_preview: str = ""
    error: str = ""
    approval_message: str = ""
    approvers: str = ""

    @property
    def css_state(self) -> str:
        return self.state.lower()

    @property
    def label(self) -> str:
        return "not started" if self.state == NOT_STARTED else self.state

    @property
    def execution_url(self) -> str:
        return reverse("executions:detail", args=[self.execution_id]) if self.execution_id else ""


def preview(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """A value on one line, cut at ``limit`` characters; never fails whatever is stored."""
    if value is None:
        return ""
    try:
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError) as exc:
        return f"(cannot be shown: {type(exc).__name__})"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration_text(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _kind(step: StepSpec) -> str:
    if step.approval:
        return "approval"
    if step.route:
        return f"routed ({step.route.strategy or 'default'})"
    return step.agent or ""


def _detail(step: StepSpec | None, rows: list[StepRun]) -> str:
    """A map step's items ended of all; a loop's iteration."""
    items = [row for row in rows if row.index > 0]
    if items:
        ended = sum(row.state in STEP_ENDED for row in items)
        return f"{ended}/{len(items)}"
    iteration = max((row.iteration for row in rows), default=1)
    if iteration > 1 or (step is not None and step.until and rows):
        limit = f" of {step.max_iterations}" if step is not None and step.max_iterations else ""
        return f"iteration {iteration}{limit}"
    return ""


def _step_view(step: StepSpec | None, step_id: str, rows: list[StepRun]) -> StepView:
    if step is not None:
        view = StepView(id=step_id, kind=_kind(step), depends_on=step.depends_on)
        state, output = step_outcome(step, rows)
    else:  # a plain workflow's task: its one row says it all
        view = StepView(id=step_id, kind="task")
        state, output = (rows[-1].state, rows[-1].output) if rows else (None, None)
    if step is not None and step.approval:
        view.approval_message = step.approval.message
        who = [*step.approval.approvers, *([f"group {step.approval.group}"] if step.approval.group else [])]
        view.approvers = ", ".join(who) or "the run's owner or an operator"
    if not rows:
        return view
    last = max(rows, key=lambda row: (row.iteration, row.index))
    view.state = state or NOT_STARTED
    view.detail = _detail(step, rows)
    if not any(row.index for row in rows):
        view.execution_id = last.execution_id
    started = [row.started_at or row.created_at for row in rows]
    view.started_at = min(started)
    if view.state in STEP_ENDED:
        view.finished_at = max((row.finished_at for row in rows if row.finished_at), default=None)
    view.output_preview = preview(output)
    errors = [row.error for row in rows if row.error]
    if errors:
        summary = error_summary(errors[-1]) or {}
        view.error = preview(f"{summary.get('type', '')}: {summary.get('message', '')}".lstrip(": "), 200)
    return view


def step_views(run: WorkflowRun) -> list[StepView]:
    """Every step of the run in dependency order, those not started yet included."""
    rows = selectors.run_step_rows(run_id=run.pk)
    if run.version_id is None:
        return [_step_view(None, step_id, step_rows) for step_id, step_rows in rows.items()]
    spec = spec_of(run)
    return [_step_view(spec.step(step_id), step_id, rows.get(step_id, [])) for step_id in spec.topological_order()]


def picture(run: WorkflowRun, steps: list[StepView]) -> dag.Picture | None:
    """The DAG laid out, each node with its step's state, detail and execution link; None past MAX_DRAWN_STEPS."""
    if len(steps) > dag.MAX_DRAWN_STEPS:
        return None
    drawn = dag.layout((step.id, step.depends_on) for step in steps)
    by_id = {step.id: step for step in steps}
    for node in drawn.nodes:
        step = by_id[node.id]
        node.state = "" if step.state == NOT_STARTED else step.state
        node.detail = " · ".join(part for part in (step.label, step.detail) if part)
        node.href = step.execution_url
    return drawn


def event_text(event: RunEvent) -> str:
    """One line of the run's history."""
    data = event.data if isinstance(event.data, dict) else {"data": event.data}
    if event.kind == RunEventKind.STATUS:
        return f"run {data.get('from') or '—'} → {data.get('to')}"
    if event.kind == RunEventKind.STEP:
        index, iteration = data.get("index"), data.get("iteration")
        where = f"[{index - 1}]" if isinstance(index, int) and index > 0 else ""
        again = f" (iteration {iteration})" if isinstance(iteration, int) and iteration > 1 else ""
        return f"step {event.step_id}{where}{again}: {data.get('state')}"
    action = str(data.get("action", "action"))
    done = ACTIONS_DONE.get(action, action)
    target = f" step {event.step_id}" if event.step_id else ""
    comment = f": {data['comment']}" if data.get("comment") else ""
    return f"{done}{target}{comment}"


def history(run_id: int) -> tuple[list[dict], int]:
    events, omitted = selectors.run_history(run_id=run_id)
    shown = []
    for event in events:
        actor = event.actor.get_username() if event.actor_id and event.actor else ""
        error = event.data.get("error") if isinstance(event.data, dict) else None
        shown.append({"event": event, "text": event_text(event), "actor": actor, "error": error_summary(error)})
    return shown, omitted


def run_page(*, run_id: int, user=None) -> dict | None:
    """Everything the run page shows, for ``user`` (who may or may not decide its approvals)."""
    run = selectors.run_get(run_id=run_id)
    if run is None:
        return None
    steps = step_views(run)
    waiting = [step for step in steps if step.state == "WAITING" and step.kind == "approval"]
    spec = spec_of(run) if run.version_id else None
    decisions = [
        {"step": step, "allowed": may_approve(user, spec.step(step.id).approval, run)} for step in waiting if spec
    ]
    events, omitted = history(run.pk)
    counts: dict[str, int] = {}
    for step in steps:
        counts[step.state] = counts.get(step.state, 0) + 1
    finished = run.status in RUN_FINISHED
    elapsed = run.finished_at - run.started_at if run.finished_at and run.started_at else None
    return {
        "run": run,
        "steps": steps[:STEP_TABLE_SHOWN],
        "steps_left_out": max(len(steps) - STEP_TABLE_SHOWN, 0),
        "step_counts": sorted(counts.items()),
        "picture": picture(run, steps),
        "max_drawn_steps": dag.MAX_DRAWN_STEPS,
        "decisions": decisions,
        "history": events,
        "history_omitted": omitted,
        "duration": duration_text(elapsed / timedelta(seconds=1)) if elapsed is not None else "",
        "input_json": pretty_json(run.input),
        "output_json": pretty_json(run.output) if run.output is not None else "",
        "error": error_summary(run.error),
        "can_pause": run.status in (WorkflowStatus.PENDING, WorkflowStatus.RUNNING, WorkflowStatus.WAITING),
        "can_resume": run.status == WorkflowStatus.PAUSED,
        "can_cancel": not finished,
        "can_rerun": finished and run.version_id is not None,
        "total_steps": len(steps),
    }


def run_panels(page: dict, names=RUN_PANELS, **extra) -> dict[str, str]:
    """The run page's partials rendered for a push (``oob``), by name."""
    context = {**page, "oob": True, **extra}
    return {name: render_text(f"workflows/run.html#{name}", context) for name in names}
