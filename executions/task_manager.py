"""The seed's task manager (``registry.get_task_manager()``): an async facade over the
task and execution services and selectors, for code such as the seed's usage examples.

Every task it returns carries its outcome, read from its latest execution: ``status``
(PENDING until its first execution), ``output`` (the result) and ``error``.
"""

import asyncio
from collections.abc import Iterable
from typing import Any

from asgiref.sync import sync_to_async

from executions import selectors
from executions.models import Execution, Task
from executions.models import ExecutionState as S
from executions.services import execution_submit, task_create
from executions.state import FINISHED
from routing.factory import AGENT_OVERRIDES_KEY, RunnableAgent
from routing.models import AgentConfig

# How often a caller waiting for an execution reads its row: the workers are other
# processes, and the row is the one place their news always reaches.
WAIT_POLL_SECONDS = 0.05


def task_submit(*, task: Task, agent: RunnableAgent | AgentConfig | None = None, **options) -> Execution:
    """``execution_submit`` for an agent built by the factory: its per-call overrides travel in
    the execution's metadata (``AGENT_OVERRIDES_KEY``) to the worker, which builds the agent with them."""
    overrides = agent.overrides if isinstance(agent, RunnableAgent) else {}
    config = agent.config if isinstance(agent, RunnableAgent) else agent
    metadata = options.pop("metadata", None)
    if overrides and (metadata is None or isinstance(metadata, dict)):
        metadata = {**(metadata or {}), AGENT_OVERRIDES_KEY: overrides}
    return execution_submit(task=task, agent=config, metadata=metadata, **options)


async def execution_wait(execution_id: int, *, timeout: float | None = None) -> Execution:
    """The execution once it has finished (COMPLETED, FAILED, CANCELLED or TIMED_OUT).

    ``TimeoutError`` after ``timeout`` seconds; the execution goes on.
    """
    async with asyncio.timeout(timeout):
        while True:
            execution = await Execution.objects.aget(pk=execution_id)
            if execution.state in FINISHED:
                return execution
            await asyncio.sleep(WAIT_POLL_SECONDS)


def _task(task_id: int) -> Task:
    task = Task.objects.select_related("agent").filter(pk=task_id).first()
    if task is None:
        raise Task.DoesNotExist(f"No task with id {task_id}.")
    return task


def _with_outcome(task: Task, execution: Execution) -> Task:
    task.status, task.output, task.error = execution.state, execution.result, execution.error
    return task


class TaskManager:
    async def create_task(self, *, name: str, description: str = "", input_data: Any = None, **fields) -> Task:
        """A new task (``fields``: tags, agent, priority, routing_strategy, created_by); it is PENDING."""
        task = await sync_to_async(task_create)(name=name, description=description, input_data=input_data, **fields)
        task.status, task.output, task.error = S.PENDING, None, None
        return task

    async def get_task(self, task_id: int) -> Task | None:
        """The task with its outcome, or None when there is no such task."""
        return await sync_to_async(selectors.task_get)(task_id=task_id)

    async def find_tasks(
        self,
        *,
        name: str | None = None,
        tags: Iterable[str] | str | None = None,
        status: str | None = None,
        limit: int = selectors.LIST_LIMIT,
    ) -> list[Task]:
        """Newest first: name containing ``name`` (any case), carrying all ``tags``, with ``status``."""
        return await sync_to_async(selectors.task_list)(name=name, tags=tags, status=status, limit=limit)

    async def execute_task(
        self,
        task_id: int,
        agent: RunnableAgent | AgentConfig | None = None,
        *,
        wait_timeout: float | None = None,
        **options,
    ) -> Task:
        """Run the task on the workers (with ``agent``, else the task's own, else the router's choice) and
        wait for it to finish; ``options`` are ``execution_submit``'s (timeout, max_attempts, priority...).

        The task comes back with this execution's outcome: a failing agent gives a FAILED task with
        the error, not an exception. A submission that is refused (no suitable agent, a disabled
        agent, bad options) raises ``SubmitError``, as it does everywhere else.
        """
        task = await sync_to_async(_task)(task_id)
        execution = await sync_to_async(task_submit)(task=task, agent=agent, **options)
        return _with_outcome(task, await execution_wait(execution.pk, timeout=wait_timeout))
