"""The dispatcher's repair pass: runs left between steps are advanced from their committed facts.

Runs normally advance inside the transaction of the fact that moves them, so
this finds work only after a fault: a hook that failed (it is logged and rolled
back alone, and the execution's end still commits), or a run whose advance was
interrupted before a step could start.
"""

import logging

from django.db import transaction
from django.db.models import Exists, OuterRef

from executions.models import ExecutionState as ES
from workflows import engine
from workflows.models import StepRun, StepState, WorkflowRun, WorkflowStatus

logger = logging.getLogger(__name__)

# At most this many repairs per dispatcher pass: a backlog is worked off over several passes.
BATCH = 100
ENDED_EXECUTION = [ES.COMPLETED, ES.FAILED, ES.CANCELLED, ES.TIMED_OUT]


def repair_runs() -> int:
    """Apply execution ends that no step has taken in, then advance runs with nothing in flight."""
    repaired = 0
    missed = (
        StepRun.objects.filter(superseded=False, state=StepState.RUNNING, execution__state__in=ENDED_EXECUTION)
        .values_list("execution_id", "execution__state")
        .order_by("id")[:BATCH]
    )
    for execution_id, state in missed:
        with transaction.atomic():
            engine.step_execution_changed(execution_id, ES.RUNNING, state)
        repaired += 1
        logger.warning("Workflow step of execution %s had missed its end (%s); applied", execution_id, state)
    in_flight = StepRun.objects.filter(
        run=OuterRef("pk"), superseded=False, state__in=[StepState.RUNNING, StepState.WAITING, StepState.PENDING]
    )
    stalled = (
        WorkflowRun.objects.filter(status=WorkflowStatus.RUNNING, version__isnull=False)
        .exclude(Exists(in_flight))
        .values_list("pk", flat=True)
        .order_by("pk")[:BATCH]
    )
    for run_id in stalled:
        with transaction.atomic():
            run = engine.locked_run(run_id)
            if run.status != WorkflowStatus.RUNNING:
                continue
            before = (run.status, run.steps_ended)
            engine.advance(run, everything=True)
            run.refresh_from_db(fields=["status", "steps_ended"])
            if (run.status, run.steps_ended) != before or StepRun.objects.filter(
                run=run, superseded=False, state=StepState.RUNNING
            ).exists():
                repaired += 1
                logger.warning("Workflow run %s was left between steps; advanced", run_id)
    return repaired
