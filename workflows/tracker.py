"""The seed's Workflow Tracker: ``registry.get_workflow_tracker()``, async facades over ``workflows.services``.

workflow = await tracker.create_workflow(name="Example Workflow", description="A demonstration workflow")
await tracker.add_task_to_workflow(workflow.id, task.id)
status = await tracker.sync_workflow_status(workflow.id)
"""

from typing import Any

from asgiref.sync import sync_to_async

from executions.models import Task
from workflows import services
from workflows.models import StepRun, WorkflowRun, WorkflowStatus
from workflows.services import WorkflowError


def _run(workflow_id: int) -> WorkflowRun:
    run = WorkflowRun.objects.filter(pk=workflow_id).first()
    if run is None:
        raise WorkflowError(f"No workflow {workflow_id}.")
    return run


class WorkflowTracker:
    Status = WorkflowStatus

    async def create_workflow(self, name: str, description: str = "", metadata: dict | None = None, **fields: Any):
        return await sync_to_async(services.workflow_create)(
            name=name, description=description, metadata=metadata, by=fields.get("created_by")
        )

    async def get_workflow(self, workflow_id: int) -> WorkflowRun | None:
        return await WorkflowRun.objects.filter(pk=workflow_id).afirst()

    async def add_task_to_workflow(self, workflow_id: int, task_id: int) -> StepRun:
        def add():
            task = Task.objects.filter(pk=task_id).first()
            if task is None:
                raise WorkflowError(f"No task {task_id}.")
            return services.workflow_add_task(run=_run(workflow_id), task=task)

        return await sync_to_async(add)()

    async def get_workflow_tasks(self, workflow_id: int) -> list[Task]:
        def tasks():
            run = _run(workflow_id)
            ids = StepRun.objects.filter(run=run, superseded=False, task__isnull=False).values_list("task_id")
            return list(Task.objects.filter(pk__in=ids).order_by("pk"))

        return await sync_to_async(tasks)()

    async def update_workflow_status(self, workflow_id: int, status: str, error: Any = None) -> WorkflowRun:
        return await sync_to_async(lambda: services.workflow_status_update(run=_run(workflow_id), status=status,
                                                                           error=error))()  # fmt: skip

    async def compute_workflow_status(self, workflow_id: int) -> str:
        return await sync_to_async(lambda: services.workflow_status_compute(run=_run(workflow_id)))()

    async def sync_workflow_status(self, workflow_id: int) -> str:
        return await sync_to_async(lambda: services.workflow_status_sync(run=_run(workflow_id)))()
