"""The seed's ``ServiceRegistry``: its Python API, as thin async facades over the
same services the views, API, admin and CLI call.

    registry = ServiceRegistry.get_instance()
    task = await registry.get_task_manager().create_task(name="...", description="...", input_data={...})
    router = registry.get_task_router(RoutingStrategy.CAPABILITY_MATCH)
    agent = await registry.get_agent_factory().create_agent(await router.route_task(task))
    result = await registry.get_enhanced_executor().execute_task(task.id, agent)
"""

import asyncio
from typing import Any

from asgiref.sync import sync_to_async

from executions.agent_activity import task_router
from executions.models import Execution, Task
from executions.models import ExecutionState as S
from executions.services import execution_submit
from executions.state import FINISHED
from executions.task_manager import TaskManager
from routing.decisions import RoutingStrategy
from routing.factory import AsyncAgentFactory, RunnableAgent
from routing.router import TaskRouter


class ExecutionFailed(Exception):
    """``execute_task`` ended in a state other than COMPLETED; ``execution`` says why."""

    def __init__(self, execution: Execution):
        error = execution.error or {}
        detail = f": {error.get('type')}: {error.get('message')}" if error else ""
        super().__init__(f"Execution {execution.pk} ended {execution.state}{detail}")
        self.execution = execution


class EnhancedExecutor:
    """Runs tasks on the workers and waits for them: the caller's process does not run agents itself."""

    poll_seconds = 0.05

    async def submit(self, task_id: int, agent: RunnableAgent | None = None, **options) -> Execution:
        task = await Task.objects.select_related("agent").aget(pk=task_id)
        config = agent.config if agent is not None else None
        return await sync_to_async(execution_submit)(task=task, agent=config, **options)

    async def wait(self, execution_id: int, timeout: float | None = None) -> Execution:
        async with asyncio.timeout(timeout):
            while True:
                execution = await Execution.objects.aget(pk=execution_id)
                if execution.state in FINISHED:
                    return execution
                await asyncio.sleep(self.poll_seconds)

    async def execute_task(self, task_id: int, agent: RunnableAgent | None = None, **options) -> Any:
        """Submit ``task_id`` (to ``agent``, else the router's choice), wait, and return its result."""
        execution = await self.submit(task_id, agent, **options)
        execution = await self.wait(execution.pk)
        if execution.state != S.COMPLETED:
            raise ExecutionFailed(execution)
        return execution.result


class ServiceRegistry:
    _instance: "ServiceRegistry | None" = None

    @classmethod
    def get_instance(cls) -> "ServiceRegistry":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def get_task_manager(self) -> TaskManager:
        return TaskManager()

    def get_task_router(self, strategy: str | RoutingStrategy | None = None) -> TaskRouter:
        return task_router(strategy)

    def get_agent_factory(self) -> AsyncAgentFactory:
        return AsyncAgentFactory()

    def get_enhanced_executor(self) -> EnhancedExecutor:
        return EnhancedExecutor()
