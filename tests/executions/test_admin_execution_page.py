"""The admin's execution pages: readable JSON, a progress bar, the live page one click away,
cancel/retry/run-again buttons through the services, and lists that do not grow with the table."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from executions import admin_lists
from executions.models import Execution, ExecutionEvent, Task
from executions.models import ExecutionState as S
from executions.services import execution_submit
from executions.state import transition
from tests.conftest import make_operator

pytestmark = pytest.mark.django_db
TRACEBACK = 'Traceback (most recent call last):\n  File "agent.py", line 3\nValueError: no'


def page_of(client, execution) -> str:
    return client.get(reverse("admin:executions_execution_change", args=[execution.pk])).content.decode()


def act(client, execution, verb: str):
    return client.post(reverse("admin:executions_execution_act", args=[execution.pk, verb]), follow=True)


def failed(agent, **fields) -> Execution:
    execution = execution_submit(agent=agent, input_data={"seconds": 1})
    transition(execution.pk, S.PREPARING, expected=[S.QUEUED])
    transition(execution.pk, S.RUNNING, expected=[S.PREPARING])
    transition(execution.pk, S.FAILED, expected=[S.RUNNING], fields={"progress": 40.0, **fields})
    execution.refresh_from_db()
    return execution


def test_json_is_indented_and_a_traceback_reads_as_lines(admin_client, demo_agents):
    execution = failed(demo_agents["slow"], error={"kind": "ValueError", "traceback": TRACEBACK})

    page = page_of(admin_client, execution)

    assert "{\n  &quot;seconds&quot;: 1\n}" in page  # the input, indented
    assert "&quot;traceback&quot;: &quot;(below)&quot;" in page
    assert "Traceback (most recent call last):\n  File &quot;agent.py&quot;, line 3\nValueError: no" in page
    assert "\\n" not in page


def test_progress_is_a_bar_and_the_live_page_is_linked(admin_client, demo_agents):
    execution = failed(demo_agents["slow"])

    page = page_of(admin_client, execution)
    listing = admin_client.get(reverse("admin:executions_execution_changelist")).content.decode()

    assert '<progress value="40" max="100"' in page and '<progress value="40" max="100"' in listing
    assert f'href="{reverse("executions:detail", args=[execution.pk])}" class="viewsitelink"' in page


def test_the_buttons_match_the_state(admin_client, demo_agents):
    queued = execution_submit(agent=demo_agents["slow"])
    down = failed(demo_agents["slow"])

    assert [label in page_of(admin_client, queued) for label in (">Cancel<", ">Retry<", ">Run again<")] == [
        True,
        False,
        False,
    ]
    assert [label in page_of(admin_client, down) for label in (">Cancel<", ">Retry<", ">Run again<")] == [
        False,
        True,
        True,
    ]


def test_cancel_retry_and_run_again_go_through_the_services_as_the_user(admin_client, admin_user, demo_agents):
    queued = execution_submit(agent=demo_agents["slow"])
    down = failed(demo_agents["slow"])

    act(admin_client, queued, "cancel")
    act(admin_client, down, "retry")
    queued.refresh_from_db()
    down.refresh_from_db()
    again = act(admin_client, queued, "rerun")

    assert queued.state == S.CANCELLED and queued.events.last().actor == admin_user
    assert down.state == S.QUEUED and down.attempt == 2 and down.events.last().actor == admin_user
    new = Execution.objects.get(rerun_of=queued)
    assert new.submitted_by == admin_user and again.redirect_chain[-1][0].endswith(f"/execution/{new.pk}/change/")
    assert f"Execution {new.pk} runs execution {queued.pk} again." in again.content.decode()


def test_a_refusal_is_a_message_and_changes_nothing(admin_client, demo_agents):
    queued = execution_submit(agent=demo_agents["slow"])

    response = act(admin_client, queued, "retry")

    assert "is QUEUED, not FAILED" in response.content.decode()
    queued.refresh_from_db()
    assert queued.state == S.QUEUED and queued.events.count() == 1
    assert admin_client.get(reverse("admin:executions_execution_act", args=[queued.pk, "cancel"])).status_code == 405


def test_staff_cannot_act_on_someone_elses_execution(client, django_user_model, demo_agents):
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_execution"))
    someone = django_user_model.objects.create_user("someone")
    theirs = execution_submit(agent=demo_agents["slow"], submitted_by=someone)
    client.force_login(staff)

    act(client, theirs, "cancel")

    theirs.refresh_from_db()
    assert theirs.state == S.QUEUED
    make_operator(staff)
    act(client, theirs, "cancel")
    theirs.refresh_from_db()
    assert theirs.state == S.CANCELLED


@pytest.mark.parametrize(
    "name", ["executions_execution", "executions_task", "executions_executionevent", "routing_agentconfig"]
)
def test_a_list_takes_the_same_queries_for_few_rows_and_many(
    admin_client, demo_agents, django_assert_num_queries, name
):
    url = reverse(f"admin:{name}_changelist")
    for _ in range(2):
        execution_submit(agent=demo_agents["slow"])
    with CaptureQueriesContext(connection) as few:
        assert admin_client.get(url).status_code == 200
    for _ in range(40):
        execution_submit(agent=demo_agents["slow"])

    with django_assert_num_queries(len(few)):
        assert admin_client.get(url).status_code == 200


def test_a_count_past_the_cap_says_more_than(admin_client, demo_agents, monkeypatch):
    monkeypatch.setattr(admin_lists, "COUNT_CAP", 3)
    for _ in range(5):
        execution_submit(agent=demo_agents["slow"])

    listing = admin_client.get(reverse("admin:executions_execution_changelist")).content.decode()
    searched = admin_client.get(reverse("admin:executions_execution_changelist"), {"q": "slow"}).content.decode()

    assert "more than 3 executions" in listing and "more than 3 executions" in searched
    assert ExecutionEvent.objects.count() == 5


def test_a_task_saved_in_the_admin_must_fit_its_agents_schema(admin_client, demo_agents):
    response = admin_client.post(
        reverse("admin:executions_task_add"),
        {
            "name": "t",
            "agent": demo_agents["text-stats"].pk,
            "input_data": "[1, 2, 3]",
            "tags": "[]",
            "priority": "0",
            "routing_strategy": "",
            "description": "",
            "executions-TOTAL_FORMS": "0",
            "executions-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200 and not Task.objects.exists()
    assert "is not of type" in str(response.context["adminform"].form.errors["input_data"])
