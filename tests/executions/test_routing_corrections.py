"""Correcting a routed run through the JSON API, and what the correction changes."""

import json

import pytest

from executions.agent_activity import agent_histories
from executions.models import ExecutionState as S
from executions.services import execution_submit
from routing.decisions import RouteRequest, RoutingStrategy
from routing.models import RoutingCorrection
from routing.router import TaskRouter
from tests.conftest import make_operator
from tests.executions.test_state import force_state
from tests.routing.test_semantic import team  # noqa: F401 - the fixture

QUERY = "Give me the Korean version of this welcome message"


def post(client, path, body):
    return client.post(f"/api/v1{path}", json.dumps(body), content_type="application/json")


@pytest.fixture
def routed(team, alice):  # noqa: F811
    execution = execution_submit(input_data={"query": QUERY}, submitted_by=alice)
    assert execution.agent == team["translator"] and execution.routing
    return execution


def test_an_operator_corrects_a_routed_run_and_the_next_task_follows(client, bob, routed, team):  # noqa: F811
    client.force_login(make_operator(bob))

    response = post(client, f"/executions/{routed.pk}/correct-routing", {"agent": "summariser", "note": "gist"})

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["chosen"], body["correct"], body["execution_id"]) == ("translator", "summariser", routed.pk)
    assert body["query"] == QUERY and body["created_by"] == "bob" and body["note"] == "gist"
    decision = TaskRouter().decide(RouteRequest(query=QUERY), strategy=RoutingStrategy.CONTENT_MATCH, dry_run=True)
    assert decision.chosen == team["summariser"]


def test_a_plain_user_may_not_correct_even_their_own_run(client, alice, routed):
    client.force_login(alice)

    response = post(client, f"/executions/{routed.pk}/correct-routing", {"agent": "summariser"})

    assert response.status_code == 403
    assert "routing.add_routingcorrection" in response.json()["detail"]
    assert not RoutingCorrection.objects.exists()


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"agent": "nobody"}, 422, "No agent called 'nobody'"),
        ({"agent": "translator"}, 422, "already went to translator"),
        ({}, 422, "agent"),
    ],
)
def test_a_correction_that_cannot_teach_is_refused(client, bob, routed, body, status, says):
    client.force_login(make_operator(bob))

    response = post(client, f"/executions/{routed.pk}/correct-routing", body)

    assert response.status_code == status
    assert says in json.dumps(response.json())
    assert not RoutingCorrection.objects.exists()


def test_a_run_that_named_its_agent_has_no_decision_to_correct(client, bob, team, alice):  # noqa: F811
    execution = execution_submit(agent=team["translator"], input_data={"query": QUERY}, submitted_by=alice)
    client.force_login(make_operator(bob))

    response = post(client, f"/executions/{execution.pk}/correct-routing", {"agent": "summariser"})

    assert response.status_code == 422
    assert "was not routed" in response.json()["detail"]


def test_a_corrected_run_is_no_longer_history_for_the_agent_that_ran_it(client, bob, routed, team):  # noqa: F811
    force_state(routed, S.COMPLETED)
    assert agent_histories([team["translator"].pk])[team["translator"].pk] == [QUERY]
    client.force_login(make_operator(bob))

    post(client, f"/executions/{routed.pk}/correct-routing", {"agent": "summariser"})

    assert agent_histories([team["translator"].pk])[team["translator"].pk] == []
