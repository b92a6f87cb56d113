"""Advancing a run: which steps start, what a step's end means, and the run's status.

Everything here runs with the run's row locked, inside the transaction of the
fact that moved it: a step execution's terminal transition (through the
executions layer's outcome hook), a start, an approval or a re-run. So a run
advances exactly once per fact, from committed state only: a worker killed
mid-advance rolls the whole transaction back, and the dispatcher's repair pass
(``workflows.recovery``) finds any run left between steps.

Work is proportional to what changed: when a step ends only its dependents are
considered, and the run keeps a count of its ended steps, so a 10,000-step
chain or fan-out costs the same per step as a small one.
"""

import logging
from collections import OrderedDict, deque
from typing import Any

from django.db import connection
from django.db.models import F
from django.utils import timezone

from executions.errors import error_detail
from executions.models import Execution
from executions.models import ExecutionState as ES
from executions.services import concurrency_group_create, execution_submit
from executions.validation import SubmitError
from routing.models import AgentConfig
from workflows.expressions import ExpressionError, evaluate, is_true, render_template
from workflows.live import publish_run_on_commit
from workflows.models import (
    STEP_ENDED,
    RunEvent,
    RunEventKind,
    StepRun,
    StepState,
    WorkflowRun,
    WorkflowStatus,
    WorkflowVersion,
)
from workflows.spec import StepSpec, WorkflowSpec, parse_spec

logger = logging.getLogger(__name__)

# What a step run becomes when its execution ends this way.
STEP_STATE_FOR = {
    ES.COMPLETED: StepState.COMPLETED,
    ES.FAILED: StepState.FAILED,
    ES.TIMED_OUT: StepState.FAILED,
    ES.CANCELLED: StepState.CANCELLED,
}


# Parsed definitions by version id: versions never change, and a large one (10,000 steps) is
# worth reading and parsing once per process, not once per step that ends.
_SPECS: OrderedDict[tuple, WorkflowSpec] = OrderedDict()
SPECS_KEPT = 64
STEP_RUNS = StepRun._meta.db_table


def locked_run(run_id: int) -> WorkflowRun:
    """The run, its row locked for the caller's transaction, with its version's identity (not its spec)."""
    rows = WorkflowRun.objects.select_for_update(of=("self",)).select_related("version").defer("version__spec")
    return rows.get(pk=run_id)


def spec_of(run: WorkflowRun) -> WorkflowSpec:
    """The run's definition, parsed once per version and process.

    Keyed by the version's id and creation time: an id alone can come back after a
    rolled-back transaction (SQLite reuses it), a version row never changes.
    """
    key = (run.version_id, run.version.created_at)
    spec = _SPECS.get(key)
    if spec is None:
        spec = parse_spec(WorkflowVersion.objects.values_list("spec", flat=True).get(pk=run.version_id))
        _SPECS[key] = spec
        if len(_SPECS) > SPECS_KEPT:
            _SPECS.popitem(last=False)
    else:
        _SPECS.move_to_end(key)
    return spec


def record(run: WorkflowRun, kind: str, *, step_id: str = "", actor=None, **data) -> RunEvent:
    event = RunEvent.objects.create(run=run, kind=kind, step_id=step_id, actor=actor, data=data)
    publish_run_on_commit(run.pk)
    return event


def set_status(run: WorkflowRun, status: str, *, actor=None, **data) -> None:
    if run.status == status:
        return
    previous, run.status = run.status, status
    fields = {"status": status, "updated_at": timezone.now()}
    if status in (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED):
        fields["finished_at"] = run.finished_at = timezone.now()
    elif previous in (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED):
        fields["finished_at"] = run.finished_at = None
    if status == WorkflowStatus.RUNNING and run.started_at is None:
        fields["started_at"] = run.started_at = timezone.now()
    WorkflowRun.objects.filter(pk=run.pk).update(**fields)
    record(run, RunEventKind.STATUS, actor=actor, **{"from": previous, "to": status, **data})


def step_changed(row: StepRun, state: str, **fields) -> None:
    """Write a step run's new state (and fields) and its history row."""
    now = timezone.now()
    row.state = state
    values = {"state": state, **fields}
    if state in STEP_ENDED:
        values["finished_at"] = now
    if state == StepState.RUNNING and row.started_at is None:
        values["started_at"] = row.started_at = now
    for name, value in values.items():
        setattr(row, name, value)
    StepRun.objects.filter(pk=row.pk).update(**values)
    data = {"state": state, "index": row.index, "iteration": row.iteration}
    if fields.get("error"):
        data["error"] = fields["error"]
    record(row.run, RunEventKind.STEP, step_id=row.step_id, **data)


# Context ---------------------------------------------------------------------------------


def current_rows(run: WorkflowRun, step_ids=None) -> dict[str, list[StepRun]]:
    rows = StepRun.objects.filter(run=run, superseded=False).order_by("index", "iteration")
    if step_ids is not None:
        rows = rows.filter(step_id__in=list(step_ids))
    grouped: dict[str, list[StepRun]] = {}
    for row in rows:
        grouped.setdefault(row.step_id, []).append(row)
    return grouped


def step_outcome(step: StepSpec, rows: list[StepRun]) -> tuple[str | None, Any]:
    """A step's state and output from its current rows; state None when it has not started."""
    if not rows:
        return None, None
    if step.map:
        items = [row for row in rows if row.index > 0]
        if not items:  # an empty list: the step row itself says how it ended
            return rows[0].state, rows[0].output
        if any(row.state in (StepState.FAILED, StepState.CANCELLED) for row in items):
            failed = next(row for row in items if row.state in (StepState.FAILED, StepState.CANCELLED))
            return failed.state, None
        if all(row.state in STEP_ENDED for row in items):
            return StepState.COMPLETED, [row.output for row in sorted(items, key=lambda row: row.index)]
        return StepState.RUNNING, None
    last = max(rows, key=lambda row: row.iteration)
    if step.until and last.state == StepState.COMPLETED and not last.comment.startswith("until met"):
        return StepState.RUNNING, None  # an iteration ended; the loop decides what follows
    return last.state, last.output


def context_for(run: WorkflowRun, spec: WorkflowSpec, step: StepSpec, **extra) -> dict:
    """What the step's templates and expressions see: the run input and its ancestors' outcomes."""
    from workflows.expressions import expression_step_refs, template_step_refs

    refs = set(template_step_refs(step.input))
    for text in (step.condition, step.map, step.until):
        if text:
            refs |= expression_step_refs(text)
    if step.route and step.route.query:
        refs |= template_step_refs(step.route.query)
    rows = current_rows(run, refs) if refs else {}
    steps = {}
    for step_id in refs:
        state, output = step_outcome(spec.step(step_id), rows.get(step_id, []))
        steps[step_id] = {"output": output, "state": state}
    return {"input": run.input, "steps": steps, **extra}


# Starting steps --------------------------------------------------------------------------


def _fail_row(row: StepRun, kind: str, message: str) -> None:
    error = error_detail(kind=kind, message=message, attempt=1, agent="", retryable=False)
    step_changed(row, StepState.FAILED, error=error)


def _submit(run: WorkflowRun, spec: WorkflowSpec, step: StepSpec, row: StepRun, context: dict, group=None) -> None:
    """Submit the execution that does ``row``'s work; a refusal fails the step with the reason."""
    try:
        input_data = render_template(step.input, context)
        agent, strategy, tags = None, None, []
        if step.agent:
            agent = AgentConfig.objects.filter(name=step.agent).first()
            if agent is None:
                raise SubmitError(f"No agent named {step.agent!r}.")
        else:
            strategy, tags = step.route.strategy or None, list(step.route.tags)
            query = render_template(step.route.query, context) if step.route.query else None
            if query is not None and isinstance(input_data, dict):
                input_data = {"query": query, **input_data}
        execution = execution_submit(
            agent=agent,
            strategy=strategy,
            tags=tags,
            input_data=input_data,
            name=f"{run.name}: {step.id}" + (f"[{row.index - 1}]" if row.index else ""),
            timeout=step.timeout,
            max_attempts=step.retries + 1,
            priority=step.priority,
            metadata={"workflow_run": run.pk, "step": step.id, "index": row.index, "iteration": row.iteration},
            submitted_by=run.created_by,
            concurrency_group=group,
        )
    except ExpressionError as exc:
        _fail_row(row, "ExpressionError", str(exc))
        return
    except SubmitError as exc:
        _fail_row(row, "SubmitError", str(exc))
        return
    step_changed(row, StepState.RUNNING, execution=execution, task=execution.task)


def _start(run: WorkflowRun, spec: WorkflowSpec, step: StepSpec) -> str:
    """Start a step whose dependencies have all ended; returns the state the step is in now."""
    context = context_for(run, spec, step)
    if step.condition:
        try:
            go = is_true(evaluate(step.condition, context))
        except ExpressionError as exc:
            row = StepRun.objects.create(run=run, step_id=step.id)
            _fail_row(row, "ExpressionError", f"condition: {exc}")
            return row.state
        if not go:
            row = StepRun.objects.create(run=run, step_id=step.id)
            step_changed(row, StepState.SKIPPED, comment=f"condition false: {step.condition}")
            return row.state
    if step.approval:
        row = StepRun.objects.create(run=run, step_id=step.id)
        step_changed(row, StepState.WAITING, comment=step.approval.message)
        return row.state
    if step.map:
        _start_map(run, spec, step, context)
        return step_outcome(step, current_rows(run, [step.id]).get(step.id, []))[0]
    row = StepRun.objects.create(run=run, step_id=step.id)
    extra = {"iteration": 1, "previous": None} if step.until else {}
    _submit(run, spec, step, row, {**context, **extra})
    return row.state


def _start_map(run: WorkflowRun, spec: WorkflowSpec, step: StepSpec, context: dict) -> None:
    try:
        items = evaluate(step.map, context)
    except ExpressionError as exc:
        _fail_row(StepRun.objects.create(run=run, step_id=step.id), "ExpressionError", f"map: {exc}")
        return
    if not isinstance(items, list):
        row = StepRun.objects.create(run=run, step_id=step.id)
        _fail_row(row, "ExpressionError", f"map: {step.map!r} gave {type(items).__name__}, not a list")
        return
    if not items:
        row = StepRun.objects.create(run=run, step_id=step.id)
        step_changed(row, StepState.COMPLETED, output=[], comment="no items")
        return
    group = concurrency_group_create(name=f"run {run.pk} / {step.id}", max_concurrent=step.max_concurrent or 0)
    rows = StepRun.objects.bulk_create(
        [StepRun(run=run, step_id=step.id, index=position + 1) for position in range(len(items))]
    )
    for position, (row, item) in enumerate(zip(rows, items, strict=True)):
        _submit(run, spec, step, row, {**context, "item": item, "index": position}, group=group)


# Advancing -------------------------------------------------------------------------------


def advance(run: WorkflowRun, *, ended: list[str] | None = None, everything: bool = False) -> None:
    """Start what can start now and settle the run's status. The run's row must be locked.

    ``ended`` names the steps that just ended (their dependents are the only
    candidates); None considers the steps without dependencies (a start), and
    ``everything`` every step (a resume, a re-run, a repair).
    """
    if run.version_id is None:
        settle_plain(run)
        return
    spec = spec_of(run)
    if run.status in (WorkflowStatus.PAUSED, WorkflowStatus.CANCELLED):
        return
    if everything:
        candidates = deque(spec.topological_order())
    else:
        candidates = deque(spec.roots() if ended is None else _dependents(spec, ended))
    seen: set[str] = set()
    while candidates:
        step = spec.step(candidates.popleft())
        if step.id in seen:
            continue
        seen.add(step.id)
        if run.status == WorkflowStatus.FAILED:
            break  # a failed run starts nothing new; running steps finish
        rows = current_rows(run, [step.id, *step.depends_on])
        if rows.get(step.id):
            continue  # already started
        deps = [step_outcome(spec.step(dep), rows.get(dep, []))[0] for dep in step.depends_on]
        if not all(state in STEP_ENDED for state in deps):
            continue
        state = _start(run, spec, step)
        if state in STEP_ENDED:
            _step_ended(run, spec, step, state)
            candidates.extend(spec.dependents(step.id))
    _settle(run, spec)


def _dependents(spec: WorkflowSpec, ended: list[str]) -> list[str]:
    return [dependent for step_id in ended for dependent in spec.dependents(step_id)]


def _step_ended(run: WorkflowRun, spec: WorkflowSpec, step: StepSpec, state: str) -> None:
    """Count a step that has ended; a failure fails the run unless the step says continue."""
    WorkflowRun.objects.filter(pk=run.pk).update(steps_ended=F("steps_ended") + 1)
    run.steps_ended += 1
    if run.status == WorkflowStatus.CANCELLED:
        return
    if state in (StepState.FAILED, StepState.CANCELLED) and step.on_failure == "fail":
        rows = current_rows(run, [step.id]).get(step.id, [])
        error = next((row.error for row in rows if row.error), None)
        run.error = {"step": step.id, **(error or {"message": f"step {step.id} {state.lower()}"})}
        WorkflowRun.objects.filter(pk=run.pk).update(error=run.error)
        set_status(run, WorkflowStatus.FAILED, step=step.id)


def _settle(run: WorkflowRun, spec: WorkflowSpec) -> None:
    if run.status in (WorkflowStatus.FAILED, WorkflowStatus.CANCELLED, WorkflowStatus.PAUSED):
        return
    if run.steps_ended >= len(spec.steps):
        rows = current_rows(run, spec.sinks())
        run.output = {step_id: step_outcome(spec.step(step_id), rows.get(step_id, []))[1] for step_id in spec.sinks()}
        WorkflowRun.objects.filter(pk=run.pk).update(output=run.output)
        set_status(run, WorkflowStatus.COMPLETED)
        return
    # Only a definition with approval steps can wait; the others never pay for the question.
    waiting = spec.has_approvals and StepRun.objects.filter(run=run, superseded=False, state=StepState.WAITING).exists()
    set_status(run, WorkflowStatus.WAITING if waiting else WorkflowStatus.RUNNING)


def _is_a_step(execution_id: int) -> bool:
    """Whether the execution runs a workflow step. Every execution's end asks, and most are not
    steps: hand-written, because the ORM query took 2 ms to build for 0.02 ms of database work
    (profiled draining no-op executions), a fifth of the whole end."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT 1 FROM {STEP_RUNS} WHERE execution_id = %s LIMIT 1", [execution_id])
        return cursor.fetchone() is not None


def step_execution_changed(execution_id: int, from_state: str, to_state: str) -> None:
    """The executions layer's outcome hook: a step's execution ended (or was retried out of FAILED)."""
    if not _is_a_step(execution_id):
        return
    row = StepRun.objects.filter(execution_id=execution_id, superseded=False).select_related("run").first()
    if row is None:
        return
    run = locked_run(row.run_id)
    row.run = run
    if from_state == ES.FAILED:  # the execution was retried by hand: the step runs again
        step_changed(row, StepState.RUNNING, error=None)
        if run.version_id is not None and run.status == WorkflowStatus.FAILED:
            WorkflowRun.objects.filter(pk=run.pk).update(steps_ended=F("steps_ended") - 1, error=None)
            run.steps_ended -= 1
            set_status(run, WorkflowStatus.RUNNING, reason=f"step {row.step_id} retried")
        else:
            advance(run, ended=[])
        return
    execution = Execution.objects.only("result", "error").get(pk=execution_id)
    state = STEP_STATE_FOR[to_state]
    if run.version_id is None:
        step_changed(
            row, state, output=execution.result if state == StepState.COMPLETED else None, error=execution.error
        )
        settle_plain(run)
        return
    spec = spec_of(run)
    step = spec.step(row.step_id)
    simple = not (step.map or step.until)  # one row is the whole step: its state is the step's
    before = row.state if simple else step_outcome(step, current_rows(run, [step.id]).get(step.id, []))[0]
    step_changed(row, state, output=execution.result if state == StepState.COMPLETED else None, error=execution.error)
    if step.until and state == StepState.COMPLETED and _loop_again(run, spec, step, row):
        return
    step_ended(run, spec, step, before=before, after=state if simple else None)


def step_ended(
    run: WorkflowRun, spec: WorkflowSpec, step: StepSpec, *, before: str | None, after: str | None = None
) -> None:
    """After a step's row changed: if that ended the step (and it had not ended before), go on from it.

    ``after`` is the step's state now when the caller knows it; otherwise it is read from its rows.
    """
    if after is None:
        after, _ = step_outcome(step, current_rows(run, [step.id]).get(step.id, []))
    if after in STEP_ENDED and before not in STEP_ENDED:
        _step_ended(run, spec, step, after)
        advance(run, ended=[step.id])
    else:
        _settle(run, spec)


def _loop_again(run: WorkflowRun, spec: WorkflowSpec, step: StepSpec, row: StepRun) -> bool:
    """After an iteration: True if another one was started; otherwise the loop's last row says why it ended."""
    context = context_for(run, spec, step, iteration=row.iteration, output=row.output)
    try:
        done = is_true(evaluate(step.until, context))
    except ExpressionError as exc:
        _fail_row(row, "ExpressionError", f"until: {exc}")
        return False
    if done:
        StepRun.objects.filter(pk=row.pk).update(comment=f"until met after {row.iteration} iteration(s)")
        return False
    if row.iteration >= step.max_iterations:
        _fail_row(row, "LoopLimit", f"until {step.until!r} not met after {row.iteration} iterations")
        return False
    following = StepRun.objects.create(run=run, step_id=step.id, iteration=row.iteration + 1)
    context = context_for(run, spec, step, iteration=row.iteration + 1, previous=row.output)
    _submit(run, spec, step, following, context)
    if following.state in STEP_ENDED:
        return False
    _settle(run, spec)
    return True


# Plain workflows (the seed's collections of tasks) -----------------------------------------


def plain_status(states: list[str]) -> str:
    """The seed's rules: FAILED if any task failed, RUNNING while one runs or waits, COMPLETED when all did."""
    if not states:
        return WorkflowStatus.PENDING
    if any(state in (StepState.FAILED, StepState.CANCELLED) for state in states):
        return WorkflowStatus.FAILED
    if all(state == StepState.COMPLETED for state in states):
        return WorkflowStatus.COMPLETED
    if all(state == StepState.PENDING for state in states):
        return WorkflowStatus.PENDING
    return WorkflowStatus.RUNNING


def settle_plain(run: WorkflowRun) -> None:
    if run.status in (WorkflowStatus.PAUSED, WorkflowStatus.CANCELLED):
        return
    states = list(StepRun.objects.filter(run=run, superseded=False).values_list("state", flat=True))
    set_status(run, plain_status(states))
