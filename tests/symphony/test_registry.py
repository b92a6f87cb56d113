"""The seed's usage examples, run as the seed writes them (tests/seed_examples.py), against a worker loop.

The same examples run against real worker processes in tests/process/test_seed_examples.py.
"""

import pytest
from asgiref.sync import sync_to_async

from executions.models import Execution
from tests import seed_examples
from tests.workers import worker_running
from workflows.models import StepRun, WorkflowStatus
from workflows.services import WorkflowError

pytestmark = pytest.mark.django_db(transaction=True)


async def test_the_seeds_basic_workflow_task_routing_and_batch_examples_run(demo_agents):
    async with worker_running():
        workflow, task, record = await seed_examples.basic_workflow()
        assert (record.id, record.status, record.workflow_id) == (task.id, "COMPLETED", workflow.id)
        assert record.output["words"] == 3  # "Process this information"
        tracker = seed_examples.ServiceRegistry.get_instance().get_workflow_tracker()
        assert await tracker.sync_workflow_status(workflow.id) == WorkflowStatus.COMPLETED
        assert [t.id for t in await tracker.get_workflow_tasks(workflow.id)] == [task.id]

        agent, routed = await seed_examples.task_routing(task)
        assert agent.name == "text-stats" and routed.status == "COMPLETED"

        task_ids, records = await seed_examples.batch_execution(workflow)
        assert [r.id for r in records] == task_ids and {r.status for r in records} == {"COMPLETED"}
        assert [r.output["words"] for r in records] == [3] * 5  # "Process batch item": digits are not words
        assert await tracker.compute_workflow_status(workflow.id) == WorkflowStatus.COMPLETED
        assert await sync_to_async(StepRun.objects.filter(run_id=workflow.id).count)() == 6


async def test_a_failing_agent_gives_a_failed_record_not_an_exception(demo_agents):
    registry = seed_examples.ServiceRegistry.get_instance()
    async with worker_running():
        workflow = await registry.get_workflow_tracker().create_workflow(name="fails")
        task = await registry.get_task_manager().create_task(name="fails", input_data={"fail_attempts": 5})
        flaky = await registry.get_agent_factory().create_agent(demo_agents["flaky"].pk)
        record = await registry.get_enhanced_executor().execute_task(task.id, flaky, workflow.id, max_attempts=1)

        assert record.status == "FAILED" and record.error["type"] == "routing.agents.demo.DemoAgentError"
        assert (await registry.get_workflow_tracker().get_workflow(workflow.id)).status == WorkflowStatus.FAILED


async def test_hooks_run_around_the_call_and_a_raising_hook_loses_nothing(demo_agents):
    registry = seed_examples.ServiceRegistry.get_instance()
    seen = []

    def pre(task, agent):
        seen.append(("pre", task.name, agent.name))
        raise RuntimeError("pre hook broke")

    async def post(task, agent, result):
        seen.append(("post", result.status))

    async with worker_running():
        workflow = await registry.get_workflow_tracker().create_workflow(name="hooks")
        task = await registry.get_task_manager().create_task(name="hooked", input_data={"text": "Hi there."})
        agent = await seed_examples.demo_agent()
        record = await registry.get_enhanced_executor().execute_task(
            task.id, agent, workflow.id, context={"tenant": "acme"}, pre_execution_hook=pre, post_execution_hook=post
        )

    assert seen == [("pre", "hooked", "text-stats"), ("post", "COMPLETED")]
    assert record.status == "COMPLETED"
    assert record.hook_errors == [
        {
            "hook": "pre",
            "name": "test_hooks_run_around_the_call_and_a_raising_hook_loses_nothing.<locals>.pre",
            "error": "RuntimeError: pre hook broke",
        }
    ]  # noqa: E501
    execution = await Execution.objects.aget(pk=record.execution_id)
    assert execution.metadata["context"] == {"tenant": "acme"} and execution.metadata["workflow_id"] == workflow.id


async def test_execute_with_retry_ends_failed_with_every_attempt_in_the_history(demo_agents):
    registry = seed_examples.ServiceRegistry.get_instance()
    async with worker_running():
        task = await registry.get_task_manager().create_task(name="never", input_data={"fail_attempts": 9})
        flaky = await registry.get_agent_factory().create_agent(demo_agents["flaky"].pk)
        record = await registry.get_enhanced_executor().execute_with_retry(task.id, flaky, max_retries=2,
                                                                            retry_delay=0.01)  # fmt: skip
        assert (record.status, record.attempts) == ("FAILED", 3)
        execution = await Execution.objects.aget(pk=record.execution_id)
        failed = [event async for event in execution.events.filter(to_state="FAILED")]
        assert [event.data["error"]["attempt"] for event in failed] == [1, 2, 3]

        task = await registry.get_task_manager().create_task(name="twice", input_data={"fail_attempts": 1})
        record = await registry.get_enhanced_executor().execute_with_retry(task.id, flaky, max_retries=3,
                                                                            retry_delay=0.01)  # fmt: skip
        assert (record.status, record.attempts, record.output) == ("COMPLETED", 2, {"succeeded_on_attempt": 2})


async def test_the_tracker_refuses_what_does_not_exist(demo_agents):
    tracker = seed_examples.ServiceRegistry.get_instance().get_workflow_tracker()
    assert await tracker.get_workflow(999_999) is None
    with pytest.raises(WorkflowError, match="No workflow 999999"):
        await tracker.update_workflow_status(999_999, "PAUSED")
    workflow = await tracker.create_workflow(name="w", description="d", metadata={"team": "x"})
    assert (workflow.status, workflow.metadata) == (WorkflowStatus.PENDING, {"team": "x"})
    paused = await tracker.update_workflow_status(workflow.id, "PAUSED")
    assert paused.status == WorkflowStatus.PAUSED
    resumed = await tracker.update_workflow_status(workflow.id, "RUNNING")
    assert resumed.status == WorkflowStatus.PENDING  # recomputed from its tasks: it has none yet
    with pytest.raises(WorkflowError, match="not a workflow status"):
        await tracker.update_workflow_status(workflow.id, "DONE")
