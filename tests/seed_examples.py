"""The seed's three usage examples ("Basic Workflow", "Task Routing", "Batch Execution"), as written.

Each function is the seed's code block, with only what the seed leaves to the
reader filled in: which ``agent`` the first and third examples run (the demo
text analyst, built by the seed's own agent factory). They run against a live
install: the agents run on its workers, not in this process.
"""

from routing.decisions import RoutingStrategy
from routing.models import AgentConfig
from symphony.registry import ServiceRegistry


async def demo_agent():
    config = await AgentConfig.objects.aget(name="text-stats")
    return await ServiceRegistry.get_instance().get_agent_factory().create_agent(config.id)


async def basic_workflow():
    # Set up repositories and registry
    registry = ServiceRegistry.get_instance()

    # Get execution services
    workflow_tracker = registry.get_workflow_tracker()
    executor = registry.get_enhanced_executor()
    task_manager = registry.get_task_manager()

    agent = await demo_agent()

    # Create a workflow
    workflow = await workflow_tracker.create_workflow(name="Example Workflow", description="A demonstration workflow")

    # Create tasks
    task = await task_manager.create_task(
        name="Example Task", description="A task to execute", input_data={"query": "Process this information"}
    )

    # Add task to workflow
    await workflow_tracker.add_task_to_workflow(workflow.id, task.id)

    # Execute task in workflow context
    result = await executor.execute_task(task.id, agent, workflow.id)
    return workflow, task, result


async def task_routing(task):
    registry = ServiceRegistry.get_instance()
    executor = registry.get_enhanced_executor()

    # Get router with strategy
    router = registry.get_task_router(RoutingStrategy.CAPABILITY_MATCH)

    # Route task to appropriate agent
    agent_config_id = await router.route_task(task)

    # Get agent factory
    agent_factory = registry.get_agent_factory()

    # Create agent from config
    agent = await agent_factory.create_agent(agent_config_id)

    # Execute task with matched agent
    result = await executor.execute_task(task.id, agent)
    return agent, result


async def batch_execution(workflow):
    registry = ServiceRegistry.get_instance()
    workflow_tracker = registry.get_workflow_tracker()
    executor = registry.get_enhanced_executor()
    task_manager = registry.get_task_manager()
    agent = await demo_agent()

    # Create tasks
    task_ids = []
    for i in range(5):
        task = await task_manager.create_task(
            name=f"Batch Task {i}",
            description=f"Task {i} in batch execution",
            input_data={"query": f"Process batch item {i}"},
        )
        task_ids.append(task.id)
        await workflow_tracker.add_task_to_workflow(workflow.id, task.id)

    # Create task-agent pairs
    task_agent_pairs = [(task_id, agent) for task_id in task_ids]

    # Execute in batch
    results = await executor.batch_execute(task_agent_pairs, workflow_id=workflow.id, max_concurrent=3)
    return task_ids, results
