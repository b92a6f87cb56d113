"""Run again: any finished run, its input editable first, as a new execution linked to the old one."""

import html as html_module
import json

import pytest
from django.urls import reverse

from executions import services
from executions.models import Execution, Task
from executions.models import ExecutionState as S
from executions.state import InvalidTransition, transition

pytestmark = pytest.mark.django_db

FINISHED = [S.COMPLETED, S.FAILED, S.TIMED_OUT, S.CANCELLED]


@pytest.fixture
def owner(client, alice):
    client.force_login(alice)
    return client


def finished_in(state: str, agent, by, input_data=None) -> Execution:
    """A run of ``agent`` by ``by`` that ended in ``state`` the way a worker or a person ends one."""
    execution = services.execution_submit(agent=agent, input_data=input_data or {"text": "old"}, submitted_by=by)
    if state == S.CANCELLED:
        return services.execution_cancel(execution=execution, by=by)
    transition(execution.pk, S.PREPARING, expected=[S.QUEUED])
    transition(execution.pk, S.RUNNING, expected=[S.PREPARING])
    transition(execution.pk, state, expected=[S.RUNNING], fields={"error": {"message": "over"}})
    return Execution.objects.get(pk=execution.pk)


def rerun(client, execution, text: str):
    return client.post(reverse("executions:rerun", args=[execution.pk]), {"input": text})


@pytest.mark.parametrize("state", FINISHED)
def test_any_finished_run_runs_again_with_the_same_task(owner, alice, make_agent, state):
    old = finished_in(state, make_agent("echo"), alice)

    response = rerun(owner, old, json.dumps({"text": "old"}, indent=2))

    again = Execution.objects.exclude(pk=old.pk).get()
    assert response.status_code == 302 and response["Location"] == reverse("executions:detail", args=[again.pk])
    assert (again.state, again.rerun_of, again.task_id, again.agent) == (S.QUEUED, old, old.task_id, old.agent)
    assert again.submitted_by == alice
    assert Execution.objects.get(pk=old.pk).state == state  # the old run is only read


@pytest.mark.parametrize("state", FINISHED)
def test_edited_input_runs_as_a_task_of_its_own_and_the_old_task_is_kept(owner, alice, make_agent, state):
    old = finished_in(state, make_agent("echo"), alice)

    response = rerun(owner, old, '{"text": "edited", "n": [1, 2]}')

    again = Execution.objects.exclude(pk=old.pk).get()
    assert response.status_code == 302
    assert again.task.input_data == {"text": "edited", "n": [1, 2]}
    assert again.task_id != old.task_id and again.task.name == old.task.name
    assert Task.objects.get(pk=old.task_id).input_data == {"text": "old"}
    html = owner.get(response["Location"]).content.decode()
    assert "&quot;edited&quot;" in html and f"re-run of #{old.pk}" in html


def test_bad_json_is_refused_clearly_and_nothing_is_stored(owner, alice, make_agent):
    old = finished_in(S.COMPLETED, make_agent("echo"), alice)
    before = (Execution.objects.count(), Task.objects.count())

    response = rerun(owner, old, '{"text": "edited",}')

    html = response.content.decode()
    assert response.status_code == 400
    assert "The input is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 19)." in html
    assert "{&quot;text&quot;: &quot;edited&quot;,}</textarea>" in html  # kept as typed
    assert (Execution.objects.count(), Task.objects.count()) == before


def test_a_refused_submit_stores_no_task_either(owner, alice, make_agent):
    agent = make_agent("echo")
    old = finished_in(S.COMPLETED, agent, alice)
    agent.enabled = False
    agent.save()
    before = (Execution.objects.count(), Task.objects.count())

    response = rerun(owner, old, '{"text": "edited"}')

    assert response.status_code == 400
    assert "Agent &#x27;echo&#x27; is disabled." in response.content.decode()
    assert (Execution.objects.count(), Task.objects.count()) == before


def test_a_run_that_has_not_finished_cannot_run_again(owner, alice, make_agent):
    waiting = services.execution_submit(agent=make_agent("echo"), input_data={}, submitted_by=alice)

    response = rerun(owner, waiting, "{}")

    assert response.status_code == 400
    assert "only a finished run can run again" in response.content.decode()
    assert Execution.objects.count() == 1
    assert (
        reverse("executions:rerun", args=[waiting.pk])
        not in owner.get(reverse("executions:detail", args=[waiting.pk])).content.decode()
    )


def test_someone_elses_run_is_a_404_and_nothing_is_stored(client, alice, bob, make_agent):
    old = finished_in(S.COMPLETED, make_agent("echo"), alice)
    client.force_login(bob)

    assert rerun(client, old, "{}").status_code == 404
    assert client.get(reverse("executions:rerun", args=[old.pk])).status_code == 404
    assert Execution.objects.count() == 1


def test_the_form_is_on_the_page_of_a_finished_run_prefilled_with_its_input(owner, alice, make_agent):
    old = finished_in(S.TIMED_OUT, make_agent("echo"), alice, input_data={"text": "old", "k": 1})

    html = owner.get(reverse("executions:detail", args=[old.pk])).content.decode()
    alone = owner.get(reverse("executions:rerun", args=[old.pk])).content.decode()

    form = html.split('id="run-again"')[1].split("</section>")[0]
    assert f'action="{reverse("executions:rerun", args=[old.pk])}"' in form
    prefilled = html_module.unescape(form.split("</textarea>")[0].rsplit(">", 1)[1])
    assert json.loads(prefilled) == {"text": "old", "k": 1} and prefilled.startswith("{\n  ")  # pretty
    assert 'id="run-again"' in alone and "&quot;k&quot;: 1" in alone


@pytest.mark.parametrize("state", [S.TIMED_OUT, S.CANCELLED, S.COMPLETED])
def test_retry_of_a_final_run_says_it_is_final_and_rerun_runs_it_again(alice, make_agent, state):
    """The issue's "another actor got there first": retry is a move of the same execution, which only
    FAILED allows; the others are final, and are run again with ``execution_rerun`` instead."""
    old = finished_in(state, make_agent("echo"), alice)

    with pytest.raises(InvalidTransition, match=f"is {state}, not FAILED; from {state} it can go to nothing"):
        services.execution_retry(execution=old, by=alice)
    assert services.execution_rerun(execution=old, by=alice).rerun_of == old


@pytest.mark.parametrize("state", [S.QUEUED, S.PREPARING, S.RUNNING])
def test_retry_of_a_run_that_never_failed_claims_no_race(alice, make_agent, state):
    execution = services.execution_submit(agent=make_agent("echo"), input_data={}, submitted_by=alice)
    for step in [S.PREPARING, S.RUNNING][: [S.QUEUED, S.PREPARING, S.RUNNING].index(state)]:
        transition(execution.pk, step, expected=[S.QUEUED if step == S.PREPARING else S.PREPARING])

    with pytest.raises(InvalidTransition) as refused:
        services.execution_retry(execution=execution, by=alice)

    assert f"is {state}, not FAILED" in str(refused.value)
    assert "got there first" not in str(refused.value)
    assert Execution.objects.get(pk=execution.pk).state == state


def test_an_edit_python_would_call_equal_is_still_an_edit(owner, alice, make_agent):
    old = finished_in(S.COMPLETED, make_agent("echo"), alice, input_data={"flag": 1})

    rerun(owner, old, '{"flag": true}')

    again = Execution.objects.exclude(pk=old.pk).get()
    assert again.task_id != old.task_id and again.task.input_data == {"flag": True}
