"""An agent's input schema: an input that does not fit is refused up front, on every interface,
with where and why, and nothing is stored."""

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from executions.models import Execution, Task
from executions.models import ExecutionState as S
from executions.services import SubmitError, execution_submit
from executions.validation import InputRefused
from workflows.models import StepRun, StepState
from workflows.services import workflow_definition_save, workflow_run_start

pytestmark = pytest.mark.django_db

OBJECT_WITH_TEXT = {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}


def nothing_stored() -> bool:
    return not Execution.objects.exists() and not Task.objects.exists()


@pytest.mark.parametrize(
    "given, says",
    [
        ([1, 2, 3], "input: [1, 2, 3] is not of type 'object'"),
        ("a string", "input: 'a string' is not of type 'object'"),
        (None, "'text' is a required property"),  # no input is an empty object
        ({"text": 5}, "input.text: 5 is not of type 'string'"),
    ],
)
def test_the_python_api_refuses_an_input_the_schema_does_not_take(make_agent, given, says):
    agent = make_agent("echo", input_schema=OBJECT_WITH_TEXT)

    with pytest.raises(InputRefused) as refused:
        execution_submit(agent=agent, input_data=given)

    assert isinstance(refused.value, SubmitError) and refused.value.field == "input"
    assert says in str(refused.value) and "agent 'echo'" in str(refused.value)
    assert nothing_stored()


def test_each_problem_names_its_place_in_the_input(make_agent):
    schema = {"type": "object", "properties": {"items": {"type": "array", "items": {"type": "integer"}}}}
    agent = make_agent("echo", input_schema=schema)

    with pytest.raises(InputRefused) as refused:
        execution_submit(agent=agent, input_data={"items": [1, "two", 3, "four"]})

    assert [(p.path, p.where) for p in refused.value.problems] == [
        (("items", 1), "input.items[1]"),
        (("items", 3), "input.items[3]"),
    ]


def test_an_input_that_fits_runs_and_an_agent_without_schema_takes_anything(make_agent, run):
    strict = make_agent("echo", input_schema=OBJECT_WITH_TEXT)
    loose = make_agent("echo", name="loose")

    fits = run(execution_submit(agent=strict, input_data={"text": "hi"}))
    anything = run(execution_submit(agent=loose, input_data=[1, 2, 3]))

    assert fits.state == anything.state == S.COMPLETED


def test_a_stored_task_is_checked_against_the_agent_it_is_submitted_to(make_agent):
    loose = make_agent("echo", name="loose")
    strict = make_agent("echo", input_schema=OBJECT_WITH_TEXT)
    task = Task.objects.create(name="t", input_data=[1, 2, 3], agent=loose)

    with pytest.raises(InputRefused):
        execution_submit(task=task, agent=strict)

    assert not Execution.objects.exists()


def test_the_demo_agents_refuse_up_front_what_they_could_never_run(demo_agents):
    """Without schemas, [1, 2, 3] to the flaky agent was accepted and failed attempt after attempt."""
    assert all(agent.input_schema for agent in demo_agents.values())
    for name, bad in [("text-stats", {}), ("slow", {"steps": 0}), ("flaky", [1, 2, 3]), ("slow", "go")]:
        with pytest.raises(InputRefused):
            execution_submit(agent=demo_agents[name], input_data=bad)
    assert nothing_stored()
    execution_submit(agent=demo_agents["text-stats"], input_data={"text": "One. Two."})
    execution_submit(agent=demo_agents["slow"], input_data={"seconds": 1, "steps": 2})


# The router -----------------------------------------------------------------------------


def test_the_router_passes_over_an_agent_whose_schema_refuses_the_input(make_agent):
    make_agent("echo", name="wants-text", input_schema=OBJECT_WITH_TEXT)
    takes_numbers = make_agent("echo", name="wants-numbers", input_schema={"type": "array"})

    execution = execution_submit(input_data=[1, 2, 3], strategy="round_robin")

    assert execution.agent == takes_numbers
    assert "wants-text (input: [1, 2, 3] is not of type 'object')" in execution.routing["reason"]
    assert [c["agent"] for c in execution.routing["candidates"]] == ["wants-numbers"]


def test_when_no_agent_takes_the_input_the_submit_is_refused_with_each_reason(make_agent):
    make_agent("echo", name="wants-text", input_schema=OBJECT_WITH_TEXT)

    with pytest.raises(SubmitError, match="No suitable agent.*wants-text \\(input: 'hello' is not of type"):
        execution_submit(input_data="hello", strategy="round_robin")

    assert nothing_stored()


# The other interfaces ---------------------------------------------------------------------


def test_the_submit_form_shows_the_refusal_on_the_input_field(client, alice, demo_agents):
    client.force_login(alice)

    response = client.post(reverse("executions:submit"), {"agent": "text-stats", "input": "[1, 2, 3]"})

    assert response.status_code == 400
    errors = response.context["form"].errors
    assert list(errors) == ["input"] and "is not of type 'object'" in errors["input"][0]
    assert nothing_stored()


def test_the_json_api_answers_422_with_one_error_per_place(client, alice, demo_agents):
    client.force_login(alice)

    response = client.post(
        "/api/v1/executions",
        json.dumps({"agent": "slow", "input": {"seconds": "soon", "steps": 0}}),
        content_type="application/json",
    )

    assert response.status_code == 422 and response["Content-Type"] == "application/problem+json"
    errors = response.json()["errors"]
    assert [(e["loc"], e["type"]) for e in errors] == [
        (["body", "input", "seconds"], "input_schema"),
        (["body", "input", "steps"], "input_schema"),
    ]
    assert "'soon' is not of type 'number'" in errors[0]["msg"]
    assert nothing_stored()


def test_the_cli_exits_non_zero_with_the_reason(demo_agents):
    with pytest.raises(CommandError, match=r"input.text: 5 is not of type 'string'"):
        call_command("symphony", "submit", "--agent", "text-stats", "--input", '{"text": 5}', stderr=io.StringIO())
    assert nothing_stored()


def test_the_admin_submit_action_reports_the_refusal(admin_client, demo_agents):
    task = Task.objects.create(name="bad", agent=demo_agents["flaky"], input_data="fail please")

    response = admin_client.post(
        reverse("admin:executions_task_changelist"),
        {"action": "submit_tasks", "_selected_action": [task.pk]},
        follow=True,
    )

    assert "is not of type &#x27;object&#x27;" in response.content.decode()
    assert not Execution.objects.exists()


def test_a_workflow_step_is_checked_when_it_is_submitted(make_agent):
    """A step's input is a template filled from the run: it is checked as its execution is
    submitted, and a refusal fails that step with the reason."""
    make_agent("echo", input_schema={"type": "object", "properties": {"n": {"type": "integer"}}})
    workflow_definition_save(
        source={"name": "wf", "steps": [{"id": "count", "agent": "echo", "input": {"n": "{{ input.n }}"}}]}
    )

    run = workflow_run_start(definition="wf", input={"n": "many"})

    step = StepRun.objects.get(run=run, step_id="count")
    assert step.state == StepState.FAILED and step.execution is None
    assert "input.n: 'many' is not of type 'integer'" in step.error["message"]
    assert not Execution.objects.exists()


def test_the_routing_dry_runs_pass_over_the_same_agents(client, alice, make_agent):
    make_agent("echo", name="wants-text", input_schema=OBJECT_WITH_TEXT)
    make_agent("echo", name="wants-numbers", input_schema={"type": "array"})
    client.force_login(alice)

    decided = client.post(
        "/api/v1/routing/decide",
        json.dumps({"input": [1, 2, 3], "strategy": "round_robin"}),
        content_type="application/json",
    ).json()
    out = io.StringIO()
    call_command("symphony", "route", "--input", '{"text": "hi"}', "--strategy", "round_robin", stdout=out)
    by_query = client.post(
        "/api/v1/routing/decide",
        json.dumps({"query": "hi", "strategy": "round_robin"}),
        content_type="application/json",
    ).json()

    assert decided["chosen"] == "wants-numbers" and "wants-text (input: [1, 2, 3]" in decided["reason"]
    assert "chosen: wants-text" in out.getvalue() and "wants-numbers (input:" in out.getvalue()
    # A query alone is no input: no schema is checked, both are candidates.
    assert {c["agent"] for c in by_query["candidates"]} == {"wants-text", "wants-numbers"}
