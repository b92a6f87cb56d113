"""Every write to workflows goes through here: pages, admin, CLI, the API and the ServiceRegistry.

Each action locks the run's row and records who did what in the run's
history; the engine (``workflows.engine``) then advances the run in the same
transaction.
"""

from collections import deque
from typing import Any

from django.db import transaction

from executions.models import Execution, Task
from executions.services import execution_cancel
from executions.state import ACTIVE, WAITING, TransitionError
from executions.validation import SubmitError, clean_json, clean_json_object
from routing.models import AgentConfig
from workflows import engine
from workflows.access import may_approve
from workflows.models import (
    STEP_ENDED,
    RunEventKind,
    StepRun,
    StepState,
    WorkflowDefinition,
    WorkflowRun,
    WorkflowStatus,
    WorkflowVersion,
)
from workflows.spec import SpecError, WorkflowSpec, parse_spec


class WorkflowError(ValueError):
    """An action on a workflow that cannot be taken; nothing was written."""


def _agent_exists(name: str) -> bool:
    return AgentConfig.objects.filter(name=name).exists()


def _locked(run: WorkflowRun | int) -> WorkflowRun:
    run_id = run.pk if isinstance(run, WorkflowRun) else run
    return engine.locked_run(run_id)


def _who(user) -> str:
    return getattr(user, "get_username", lambda: None)() or "system"


# Definitions -------------------------------------------------------------------------------


def workflow_definition_check(*, source: dict | str) -> WorkflowSpec:
    """The definition parsed and validated, or ``SpecError`` naming every problem's step and field."""
    return parse_spec(source, agent_exists=_agent_exists)


def workflow_definition_save(*, source: dict | str, by=None) -> WorkflowVersion:
    """Validate a definition and store it as a new version of its name (the same spec adds no version).

    Raises ``SpecError`` naming every problem's step and field; nothing is stored then.
    """
    spec = workflow_definition_check(source=source)
    canonical = spec.as_dict()
    with transaction.atomic():
        definition, _ = WorkflowDefinition.objects.select_for_update().get_or_create(
            name=spec.name, defaults={"description": spec.description, "created_by": by}
        )
        latest = definition.versions.order_by("-number").first()
        if latest is not None and latest.spec == canonical:
            return latest
        if definition.description != spec.description:
            WorkflowDefinition.objects.filter(pk=definition.pk).update(description=spec.description)
        return WorkflowVersion.objects.create(
            definition=definition, number=(latest.number + 1 if latest else 1), spec=canonical, created_by=by
        )


# Runs of definitions -------------------------------------------------------------------------


def workflow_run_start(
    *, definition: WorkflowDefinition | str, input: Any = None, by=None, name: str | None = None
) -> WorkflowRun:
    """Start a run of the definition's latest version; its steps without dependencies start at once."""
    if isinstance(definition, str):
        found = WorkflowDefinition.objects.filter(name=definition).first()
        if found is None:
            raise WorkflowError(f"No workflow named {definition!r}.")
        definition = found
    version = definition.latest_version
    if version is None:
        raise WorkflowError(f"Workflow {definition.name!r} has no version.")
    input = clean_json({} if input is None else input, "input")
    with transaction.atomic():
        run = WorkflowRun.objects.create(
            name=name or definition.name,
            description=definition.description,
            version=version,
            input=input,
            created_by=by,
        )
        engine.record(run, RunEventKind.ACTION, actor=by, action="start", version=version.number, by=_who(by))
        run = _locked(run)
        engine.set_status(run, WorkflowStatus.RUNNING, actor=by)
        engine.advance(run)
    run.refresh_from_db()
    return run


def workflow_run_pause(*, run: WorkflowRun, by=None) -> WorkflowRun:
    """No new step starts; running steps finish."""
    with transaction.atomic():
        run = _locked(run)
        if run.status not in (WorkflowStatus.PENDING, WorkflowStatus.RUNNING, WorkflowStatus.WAITING):
            raise WorkflowError(f"Run {run.pk} is {run.status}; only a pending, running or waiting run can pause.")
        engine.record(run, RunEventKind.ACTION, actor=by, action="pause", by=_who(by))
        engine.set_status(run, WorkflowStatus.PAUSED, actor=by)
    return run


def workflow_run_resume(*, run: WorkflowRun, by=None) -> WorkflowRun:
    with transaction.atomic():
        run = _locked(run)
        if run.status != WorkflowStatus.PAUSED:
            raise WorkflowError(f"Run {run.pk} is {run.status}, not PAUSED.")
        engine.record(run, RunEventKind.ACTION, actor=by, action="resume", by=_who(by))
        if run.version_id is None:
            run.status = WorkflowStatus.RUNNING  # recomputed from its tasks just below
            engine.settle_plain(run)
        else:
            engine.set_status(run, WorkflowStatus.RUNNING, actor=by)
            engine.advance(run, everything=True)
    run.refresh_from_db()
    return run


def workflow_run_cancel(*, run: WorkflowRun, by=None) -> WorkflowRun:
    """Cancel the run: its running steps' executions are cancelled, nothing new starts."""
    with transaction.atomic():
        run = _locked(run)
        if run.is_finished:
            raise WorkflowError(f"Run {run.pk} has already ended ({run.status}).")
        engine.record(run, RunEventKind.ACTION, actor=by, action="cancel", by=_who(by))
        engine.set_status(run, WorkflowStatus.CANCELLED, actor=by)
        rows = StepRun.objects.filter(run=run, superseded=False).exclude(state__in=STEP_ENDED)
        for row in rows.select_related("execution"):
            row.run = run
            execution = row.execution
            if execution is not None and execution.state in WAITING | ACTIVE:
                try:
                    execution_cancel(execution=execution, by=by, reason=f"workflow run {run.pk} cancelled")
                    continue  # the executions layer's hook marks the step
                except TransitionError:
                    pass  # it ended meanwhile; its hook has marked the step
            row.refresh_from_db(fields=["state"])
            if row.state not in STEP_ENDED:
                engine.step_changed(row, StepState.CANCELLED)
    run.refresh_from_db()
    return run


def _waiting_step(run: WorkflowRun, step_id: str) -> StepRun:
    row = StepRun.objects.filter(run=run, step_id=step_id, superseded=False, state=StepState.WAITING).first()
    if row is None:
        raise WorkflowError(f"Step {step_id!r} of run {run.pk} is not waiting for approval.")
    row.run = run
    return row


def _decide(*, run: WorkflowRun, step_id: str, by, comment: str, approved: bool) -> WorkflowRun:
    with transaction.atomic():
        run = _locked(run)
        if run.status in (WorkflowStatus.CANCELLED, WorkflowStatus.COMPLETED):
            raise WorkflowError(f"Run {run.pk} has ended ({run.status}).")
        row = _waiting_step(run, step_id)
        spec = engine.spec_of(run)
        step = spec.step(step_id)
        if not may_approve(by, step.approval, run):
            raise WorkflowError(f"{_who(by)} may not decide step {step_id!r} of run {run.pk}.")
        decision = {"approved": approved, "by": _who(by), "comment": comment}
        engine.record(run, RunEventKind.ACTION, step_id=step_id, actor=by, action="approve" if approved else "reject",
                      **decision)  # fmt: skip
        if approved:
            engine.step_changed(row, StepState.COMPLETED, output=decision, decided_by=by, comment=comment)
        else:
            error = {"type": "Rejected", "message": f"rejected by {_who(by)}" + (f": {comment}" if comment else "")}
            engine.step_changed(row, StepState.FAILED, error=error, decided_by=by, comment=comment)
        engine.step_ended(run, spec, step, before=StepState.WAITING)
    run.refresh_from_db()
    return run


def workflow_step_approve(*, run: WorkflowRun, step_id: str, by, comment: str = "") -> WorkflowRun:
    return _decide(run=run, step_id=step_id, by=by, comment=comment, approved=True)


def workflow_step_reject(*, run: WorkflowRun, step_id: str, by, comment: str = "") -> WorkflowRun:
    return _decide(run=run, step_id=step_id, by=by, comment=comment, approved=False)


def _downstream(spec: WorkflowSpec, step_id: str) -> set[str]:
    found, queue = {step_id}, deque([step_id])
    while queue:
        for dependent in spec.dependents(queue.popleft()):
            if dependent not in found:
                found.add(dependent)
                queue.append(dependent)
    return found


def workflow_run_rerun(*, run: WorkflowRun, from_step: str, input: Any = None, by=None) -> WorkflowRun:
    """Run again from ``from_step``: it, every step after it and every failed step start afresh;
    the outputs of the steps that completed are kept. ``input`` replaces the run's input."""
    with transaction.atomic():
        run = _locked(run)
        if run.version_id is None:
            raise WorkflowError("A plain workflow has no steps to re-run from; retry its executions instead.")
        if not run.is_finished:
            raise WorkflowError(f"Run {run.pk} is {run.status}; re-run a run that has ended.")
        spec = engine.spec_of(run)
        if from_step not in {step.id for step in spec.steps}:
            raise WorkflowError(f"Run {run.pk}'s workflow has no step {from_step!r}.")
        if input is not None:
            input = clean_json(input, "input")
            WorkflowRun.objects.filter(pk=run.pk).update(input=input)
            run.input = input
        again = _downstream(spec, from_step)
        failed = StepRun.objects.filter(run=run, superseded=False, state__in=[StepState.FAILED, StepState.CANCELLED])
        again |= set(failed.values_list("step_id", flat=True))
        StepRun.objects.filter(run=run, superseded=False, step_id__in=again).update(superseded=True)
        rows = engine.current_rows(run)
        ended = sum(1 for step in spec.steps if engine.step_outcome(step, rows.get(step.id, []))[0] in STEP_ENDED)
        WorkflowRun.objects.filter(pk=run.pk).update(steps_ended=ended, error=None, output=None)
        run.steps_ended, run.error, run.output = ended, None, None
        engine.record(run, RunEventKind.ACTION, actor=by, action="rerun", step_id=from_step, by=_who(by),
                      steps=sorted(again), input_changed=input is not None)  # fmt: skip
        engine.set_status(run, WorkflowStatus.RUNNING, actor=by)
        engine.advance(run, everything=True)
    run.refresh_from_db()
    return run


# Plain workflows: the seed's Workflow Tracker -------------------------------------------------


def workflow_create(*, name: str, description: str = "", metadata: dict | None = None, by=None) -> WorkflowRun:
    if not isinstance(name, str) or not name.strip():
        raise SubmitError("A workflow needs a name.", field="name")
    metadata = clean_json_object(metadata or {}, "metadata")
    run = WorkflowRun.objects.create(
        name=name.strip()[:200], description=description or "", metadata=metadata, created_by=by
    )
    engine.record(run, RunEventKind.ACTION, actor=by, action="create", by=_who(by))
    return run


def workflow_add_task(*, run: WorkflowRun, task: Task) -> StepRun:
    """Add a task to a plain workflow (once); it counts towards the status from its first execution on."""
    with transaction.atomic():
        run = _locked(run)
        if run.version_id is not None:
            raise WorkflowError(f"Run {run.pk} follows a definition; its steps come from it.")
        row, created = StepRun.objects.get_or_create(run=run, step_id=f"task-{task.pk}", defaults={"task": task})
        if created:
            row.run = run
            engine.record(run, RunEventKind.STEP, step_id=row.step_id, state=row.state, task=task.pk)
    return row


def workflow_task_submitted(*, run: WorkflowRun, task: Task, execution: Execution) -> None:
    """A plain workflow's task has a new execution: its step follows that one from now on."""
    with transaction.atomic():
        run = _locked(run)
        row = workflow_add_task(run=run, task=task)
        row.run = run
        engine.step_changed(row, StepState.RUNNING, execution=execution, output=None, error=None)
        if run.status not in (WorkflowStatus.PAUSED, WorkflowStatus.CANCELLED):
            engine.settle_plain(run)


def workflow_status_update(*, run: WorkflowRun, status: str, error: Any = None, by=None) -> WorkflowRun:
    """Set a run's status by hand (the seed's update_workflow_status: pause and resume included)."""
    if status not in WorkflowStatus.values:
        raise WorkflowError(f"{status!r} is not a workflow status ({', '.join(WorkflowStatus.values)}).")
    if status == WorkflowStatus.PAUSED:
        return workflow_run_pause(run=run, by=by)
    if status == WorkflowStatus.RUNNING and _locked_status(run) == WorkflowStatus.PAUSED:
        return workflow_run_resume(run=run, by=by)
    with transaction.atomic():
        run = _locked(run)
        if error is not None:
            error = clean_json(error, "error")
            run.error = error if isinstance(error, dict) else {"message": str(error)}
            WorkflowRun.objects.filter(pk=run.pk).update(error=run.error)
        engine.record(run, RunEventKind.ACTION, actor=by, action="set status", status=status, by=_who(by))
        engine.set_status(run, status, actor=by)
    return run


def _locked_status(run: WorkflowRun) -> str:
    return WorkflowRun.objects.filter(pk=run.pk).values_list("status", flat=True).get()


def workflow_status_compute(*, run: WorkflowRun) -> str:
    """What the run's status should be from its steps (the seed's rules for plain workflows)."""
    if run.status in (WorkflowStatus.PAUSED, WorkflowStatus.CANCELLED):
        return run.status
    if run.version_id is None:
        states = list(StepRun.objects.filter(run=run, superseded=False).values_list("state", flat=True))
        return engine.plain_status(states)
    return _locked_status(run)


def workflow_status_sync(*, run: WorkflowRun) -> str:
    """Store the computed status; returns it."""
    with transaction.atomic():
        run = _locked(run)
        if run.version_id is None:
            engine.settle_plain(run)
        else:
            engine.advance(run, everything=True)
    return _locked_status(run)


__all__ = [
    "SpecError",
    "WorkflowError",
    "may_approve",
    "workflow_add_task",
    "workflow_create",
    "workflow_definition_check",
    "workflow_definition_save",
    "workflow_run_cancel",
    "workflow_run_pause",
    "workflow_run_rerun",
    "workflow_run_resume",
    "workflow_run_start",
    "workflow_status_compute",
    "workflow_status_sync",
    "workflow_status_update",
    "workflow_step_approve",
    "workflow_step_reject",
    "workflow_task_submitted",
]
