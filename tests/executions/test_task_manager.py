"""The seed's task manager: tasks with a status read from their latest execution, found by
name, tags and status, and executed on the workers."""

import pytest
from asgiref.sync import async_to_sync

from executions import selectors
from executions.models import ExecutionState as S
from executions.services import execution_submit, task_create
from executions.task_manager import TaskManager, task_submit
from routing.factory import AGENT_OVERRIDES_KEY, AgentFactory
from tests.workers import worker_running


def manager(method: str):
    return async_to_sync(getattr(TaskManager(), method))


@pytest.mark.django_db
def test_a_new_task_is_pending_and_a_missing_one_is_none():
    task = manager("create_task")(name="Example Task", description="A task to execute", input_data={"query": "q"})

    assert (task.status, task.output, task.error) == (S.PENDING, None, None)
    found = manager("get_task")(task.id)
    assert (found.name, found.description, found.status) == ("Example Task", "A task to execute", S.PENDING)
    assert manager("get_task")(999999) is None


@pytest.mark.django_db
def test_the_status_is_the_latest_executions_state(make_agent, run):
    echo, boom = make_agent("echo"), make_agent("boom")
    task = task_create(name="t", input_data={"query": "hello"})

    run(execution_submit(task=task, agent=echo))
    done = manager("get_task")(task.id)
    assert (done.status, done.output) == (S.COMPLETED, {"echo": {"query": "hello"}, "attempt": 1})

    run(execution_submit(task=task, agent=boom))
    failed = manager("get_task")(task.id)
    assert (failed.status, failed.output, failed.error["message"]) == (S.FAILED, None, "the agent broke")

    execution_submit(task=task, agent=echo, hold=True)
    assert manager("get_task")(task.id).status == selectors.task_status(task=task) == S.PENDING


@pytest.mark.django_db
def test_find_tasks_filters_by_name_tags_and_status_in_one_query(make_agent, run, django_assert_num_queries):
    letter = task_create(name="Translate the letter", tags=["french", "urgent"])
    memo = task_create(name="Translate a memo", tags=["french"])
    review = task_create(name="Review the code", tags=["urgent", "python"])
    run(execution_submit(task=memo, agent=make_agent("echo")))
    find = manager("find_tasks")

    assert find(name="translate") == [memo, letter]
    assert find(tags=["urgent", "french"]) == [letter]
    assert find(tags="urgent") == [review, letter]
    assert find(status=S.COMPLETED) == [memo]
    assert find(status="PENDING", tags=["french"]) == [letter]
    assert [task.status for task in find(limit=2)] == [S.PENDING, S.COMPLETED]
    with django_assert_num_queries(1):
        selectors.task_list(name="t", tags=["urgent", "french"], status=S.PENDING)
    with pytest.raises(ValueError, match="Unknown task status 'DONE'; use one of PENDING, QUEUED"):
        find(status="DONE")


@pytest.mark.django_db
def test_an_agents_overrides_travel_in_the_executions_metadata_to_be_rebuilt_on_the_worker(make_agent):
    agent = AgentFactory().create_agent(make_agent("echo").pk, greeting="hello")
    task = task_create(name="t", input_data={"query": "hi"})

    execution = task_submit(task=task, agent=agent, metadata={"team": "docs"})

    execution.refresh_from_db()
    assert execution.metadata == {"team": "docs", AGENT_OVERRIDES_KEY: {"greeting": "hello"}}
    rebuilt = AgentFactory().build(execution.agent, overrides=execution.metadata[AGENT_OVERRIDES_KEY])
    assert rebuilt.settings["greeting"] == "hello"
    assert task_submit(task=task, agent=agent.config).metadata == {}


@pytest.mark.django_db(transaction=True)
async def test_execute_task_waits_for_the_workers_and_a_failure_is_a_failed_task(demo_agents):
    tasks = TaskManager()
    factory = AgentFactory()
    async with worker_running():
        task = await tasks.create_task(name="stats", input_data={"text": "One sentence. Two sentences!"})
        done = await tasks.execute_task(task.id, factory.build(demo_agents["text-stats"]))

        failing = await tasks.create_task(name="fails", input_data={"fail_attempts": 5})
        failed = await tasks.execute_task(failing.id, demo_agents["flaky"], max_attempts=1)
        read_back = await tasks.get_task(failing.id)

    assert (done.status, done.output["words"], done.error) == (S.COMPLETED, 4, None)
    assert failed.status == read_back.status == S.FAILED and failed.output is None
    assert failed.error["type"] == read_back.error["type"] == "routing.agents.demo.DemoAgentError"
