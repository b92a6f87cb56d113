"""The seed's Task Routing example, run as the seed writes it, against a real worker loop."""

import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from executions.worker import drain
from routing.decisions import RoutingStrategy
from symphony.registry import ExecutionFailed, ServiceRegistry

pytestmark = pytest.mark.django_db(transaction=True)


def worker_until(stop: threading.Event) -> threading.Thread:
    def loop():
        try:
            while not stop.is_set():
                drain(budget=1)
                stop.wait(0.02)
        finally:
            connections.close_all()  # this thread's own; the test database is dropped after the run

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


async def test_the_seeds_task_routing_example_runs(demo_agents):
    stop = threading.Event()
    worker = await sync_to_async(worker_until, thread_sensitive=False)(stop)
    try:
        registry = ServiceRegistry.get_instance()
        task_manager = registry.get_task_manager()
        executor = registry.get_enhanced_executor()
        task = await task_manager.create_task(
            name="Example Task",
            description="A task to execute",
            input_data={"query": "Process this information", "text": "One sentence. Two sentences!"},
            tags=["readability"],
        )

        router = registry.get_task_router(RoutingStrategy.CAPABILITY_MATCH)
        agent_config_id = await router.route_task(task)
        agent_factory = registry.get_agent_factory()
        agent = await agent_factory.create_agent(agent_config_id)
        result = await executor.execute_task(task.id, agent)

        assert agent.name == "text-stats"
        assert (result["words"], result["sentences"]) == (4, 2)

        failing = await task_manager.create_task(name="fails", input_data={"fail_attempts": 5})
        flaky = await agent_factory.create_agent(demo_agents["flaky"].pk)
        with pytest.raises(ExecutionFailed, match="ended FAILED: routing.agents.demo.DemoAgentError"):
            await executor.execute_task(failing.id, flaky, max_attempts=1)
    finally:
        stop.set()
        worker.join(5)
        await sync_to_async(connections.close_all)()  # the async ORM calls' thread
