"""The seed's Enhanced Executor: ``registry.get_enhanced_executor()``.

Agents run on the workers, never in the caller's process: each call submits an
execution (through ``execution_submit``, like every other interface) and waits
for its end. A failing agent gives a FAILED record with the error, not an
exception. Hooks run in the caller's process around that wait; a hook that
raises is recorded on the record (and in the workflow's history) and loses
nothing.

    record = await executor.execute_task(task.id, agent, workflow.id)
    records = await executor.batch_execute([(task_id, agent), ...], workflow_id=workflow.id, max_concurrent=3)
    record = await executor.execute_with_retry(task.id, agent, max_retries=3, retry_delay=1.0)
"""

import asyncio
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction

from executions.models import Execution, Task
from executions.services import concurrency_group_create, execution_retry
from executions.state import FINISHED
from executions.task_manager import task_submit
from workflows import engine, services
from workflows.models import RunEventKind, WorkflowRun
from workflows.services import WorkflowError

POLL_SECONDS = 0.05


@dataclass
class TaskRecord:
    """A task as one execution of it left it: the seed's task record with status, output and error."""

    id: int
    name: str
    status: str
    output: Any = None
    error: dict | None = None
    execution_id: int | None = None
    attempts: int = 0
    workflow_id: int | None = None
    hook_errors: list[dict] = field(default_factory=list)

    @property
    def output_data(self) -> Any:
        return self.output

    @property
    def succeeded(self) -> bool:
        return self.status == "COMPLETED"


def _record(execution: Execution, workflow_id: int | None, hook_errors: list[dict]) -> TaskRecord:
    return TaskRecord(
        id=execution.task_id,
        name=execution.task.name,
        status=execution.state,
        output=execution.result,
        error=execution.error,
        execution_id=execution.pk,
        attempts=execution.attempt,
        workflow_id=workflow_id,
        hook_errors=hook_errors,
    )


def _submit(task_id: int, agent, *, workflow_id: int | None, context: dict | None, group=None, **options) -> Execution:
    """Submit one task (to ``agent``, else its own agent or the router's choice), linked to the workflow."""
    with transaction.atomic():
        task = Task.objects.select_related("agent").filter(pk=task_id).first()
        if task is None:
            raise WorkflowError(f"No task {task_id}.")
        run = None
        if workflow_id is not None:
            run = WorkflowRun.objects.filter(pk=workflow_id).first()
            if run is None:
                raise WorkflowError(f"No workflow {workflow_id}.")
        metadata = {"context": context or {}, **({"workflow_id": workflow_id} if workflow_id else {})}
        execution = task_submit(task=task, agent=agent, metadata=metadata, concurrency_group=group, **options)
        if run is not None:
            services.workflow_task_submitted(run=run, task=task, execution=execution)
    return execution


def _hook_failed(workflow_id: int | None, which: str, hook: Callable, exc: Exception) -> dict:
    failure = {
        "hook": which,
        "name": getattr(hook, "__qualname__", repr(hook)),
        "error": f"{type(exc).__name__}: {exc}",
    }
    if workflow_id is not None:
        run = WorkflowRun.objects.filter(pk=workflow_id).first()
        if run is not None:
            engine.record(run, RunEventKind.ACTION, action="hook failed", **failure)
    return failure


async def _call_hook(hook: Callable | None, which: str, workflow_id: int | None, *args) -> dict | None:
    if hook is None:
        return None
    try:
        value = hook(*args)
        if inspect.isawaitable(value):
            await value
    except Exception as exc:
        return await sync_to_async(_hook_failed)(workflow_id, which, hook, exc)
    return None


async def _wait(execution_ids: list[int], timeout: float | None = None) -> dict[int, Execution]:
    """Until every execution has finished (COMPLETED, FAILED, CANCELLED or TIMED_OUT); one query per poll."""
    pending, done = set(execution_ids), {}
    async with asyncio.timeout(timeout):
        while pending:
            rows = Execution.objects.select_related("task").filter(pk__in=pending, state__in=FINISHED)
            async for execution in rows:
                done[execution.pk] = execution
                pending.discard(execution.pk)
            if pending:
                await asyncio.sleep(POLL_SECONDS)
    return done


class EnhancedExecutor:
    async def execute_task(
        self,
        task_id: int,
        agent=None,
        workflow_id: int | None = None,
        context: dict | None = None,
        pre_execution_hook: Callable | None = None,
        post_execution_hook: Callable | None = None,
        **options,
    ) -> TaskRecord:
        """Run ``task_id`` with ``agent`` on the workers and return its record once it has ended."""
        task = await Task.objects.aget(pk=task_id)
        failures = [f for f in [await _call_hook(pre_execution_hook, "pre", workflow_id, task, agent)] if f]
        execution = await sync_to_async(_submit)(task_id, agent, workflow_id=workflow_id, context=context, **options)
        done = await _wait([execution.pk])
        record = _record(done[execution.pk], workflow_id, failures)
        failure = await _call_hook(post_execution_hook, "post", workflow_id, task, agent, record)
        if failure:
            record.hook_errors.append(failure)
        return record

    async def batch_execute(
        self, tasks: list[tuple[int, Any]], workflow_id: int | None = None, max_concurrent: int = 5
    ) -> list[TaskRecord]:
        """Run every ``(task_id, agent)`` pair, never more than ``max_concurrent`` of them at once on any
        number of workers (a limit taken where the work is claimed); records in input order."""
        if isinstance(max_concurrent, bool) or not isinstance(max_concurrent, int) or max_concurrent < 1:
            raise ValueError(f"max_concurrent must be a whole number of at least 1, not {max_concurrent!r}.")

        def submit_all() -> list[int]:
            with transaction.atomic():
                group = concurrency_group_create(name=f"batch of {len(tasks)}", max_concurrent=max_concurrent)
                return [
                    _submit(task_id, agent, workflow_id=workflow_id, context=None, group=group).pk
                    for task_id, agent in tasks
                ]

        ids = await sync_to_async(submit_all)()
        done = await _wait(ids)
        return [_record(done[pk], workflow_id, []) for pk in ids]

    async def execute_with_retry(
        self, task_id: int, agent=None, max_retries: int = 3, retry_delay: float = 1.0, workflow_id: int | None = None
    ) -> TaskRecord:
        """Run the task; after a failure wait ``retry_delay`` (doubling) and retry it, up to ``max_retries``
        times, whatever the error. Every attempt stays in the execution's history."""
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ValueError(f"max_retries must be a whole number of at least 0, not {max_retries!r}.")
        execution = await sync_to_async(_submit)(task_id, agent, workflow_id=workflow_id, context=None,
                                                 max_attempts=1)  # fmt: skip
        for retry in range(max_retries + 1):
            finished = (await _wait([execution.pk]))[execution.pk]
            if finished.state != "FAILED" or retry == max_retries:
                return _record(finished, workflow_id, [])
            await asyncio.sleep(retry_delay * 2**retry)
            await sync_to_async(execution_retry)(execution=finished)
        raise AssertionError("unreachable")
