import pytest

from executions.agent_activity import agent_histories, agent_loads
from executions.services import execution_submit

pytestmark = pytest.mark.django_db


def test_histories_are_each_agents_newest_completed_queries_in_one_query(make_agent, run, django_assert_num_queries):
    first, second = make_agent("echo", name="first"), make_agent("echo", name="second")
    for agent in (first, second):
        for n in range(3):
            run(execution_submit(agent=agent, input_data={"query": f"{agent.name} {n}"}))
    execution_submit(agent=first, input_data={"query": "still queued"})

    with django_assert_num_queries(1):
        history = agent_histories([first.pk, second.pk], limit=2)

    assert history == {first.pk: ["first 2", "first 1"], second.pk: ["second 2", "second 1"]}


def test_loads_count_running_and_queued_per_agent(make_agent):
    agent = make_agent("echo")
    execution_submit(agent=agent)
    execution_submit(agent=agent)

    load = agent_loads([agent.pk])[agent.pk]
    assert (load.running, load.queued) == (0, 2)
