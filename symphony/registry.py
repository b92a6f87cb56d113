"""The seed's ``ServiceRegistry``: its Python API, as thin async facades over the
same services the views, API, admin and CLI call.

    registry = ServiceRegistry.get_instance()
    workflow = await registry.get_workflow_tracker().create_workflow(name="...", description="...")
    task = await registry.get_task_manager().create_task(name="...", description="...", input_data={...})
    router = registry.get_task_router(RoutingStrategy.CAPABILITY_MATCH)
    agent = await registry.get_agent_factory().create_agent(await router.route_task(task))
    record = await registry.get_enhanced_executor().execute_task(task.id, agent, workflow.id)
"""

from executions.agent_activity import task_router
from executions.task_manager import TaskManager
from routing.decisions import RoutingStrategy
from routing.factory import AsyncAgentFactory
from routing.router import TaskRouter
from workflows.executor import EnhancedExecutor, TaskRecord
from workflows.tracker import WorkflowTracker

__all__ = ["EnhancedExecutor", "RoutingStrategy", "ServiceRegistry", "TaskRecord", "WorkflowTracker"]


class ServiceRegistry:
    _instance: "ServiceRegistry | None" = None

    @classmethod
    def get_instance(cls) -> "ServiceRegistry":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def get_workflow_tracker(self) -> WorkflowTracker:
        return WorkflowTracker()

    def get_enhanced_executor(self) -> EnhancedExecutor:
        return EnhancedExecutor()

    def get_task_manager(self) -> TaskManager:
        return TaskManager()

    def get_task_router(self, strategy: str | RoutingStrategy | None = None) -> TaskRouter:
        return task_router(strategy)

    def get_agent_factory(self) -> AsyncAgentFactory:
        return AsyncAgentFactory()
