import re

import pytest
from django.urls import reverse

from executions.models import Execution, Task
from executions.models import ExecutionState as S
from executions.services import execution_submit

pytestmark = pytest.mark.django_db


def listed(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', response.content.decode())]


def test_execution_list_filters_and_searches_by_id_task_and_agent(admin_client, demo_agents):
    needle = execution_submit(agent=demo_agents["slow"], name="needle")
    hay = execution_submit(agent=demo_agents["flaky"], name="hay")
    url = reverse("admin:executions_execution_changelist")

    assert listed(admin_client.get(url, {"state__exact": "QUEUED", "q": str(needle.pk)})) == [needle.pk]
    assert listed(admin_client.get(url, {"q": str(hay.task_id)})) == [hay.pk]
    assert listed(admin_client.get(url, {"q": "flaky"})) == [hay.pk]
    assert listed(admin_client.get(url, {"state__exact": "RUNNING"})) == []
    # Text is searched on the executions page (indexed there), not by a scan of every row here.
    assert listed(admin_client.get(url, {"q": "needle"})) == []


def test_execution_page_shows_its_history_and_cannot_change_state(admin_client, demo_agents):
    execution = execution_submit(agent=demo_agents["slow"])
    url = reverse("admin:executions_execution_change", args=[execution.pk])
    page = admin_client.get(url).content.decode()
    assert "QUEUED" in page and "submitted" in page

    admin_client.post(url, {"state": S.COMPLETED})

    execution.refresh_from_db()
    assert execution.state == S.QUEUED


def test_cancel_action_calls_the_service(admin_client, demo_agents):
    queued = execution_submit(agent=demo_agents["slow"])
    response = admin_client.post(
        reverse("admin:executions_execution_changelist"),
        {"action": "cancel_executions", "_selected_action": [queued.pk]},
        follow=True,
    )
    queued.refresh_from_db()
    assert queued.state == S.CANCELLED
    assert queued.events.last().data["by"] == "admin"
    assert "Cancelled 1 execution(s)." in response.content.decode()


def test_retry_action_refuses_what_did_not_fail(admin_client, demo_agents):
    queued = execution_submit(agent=demo_agents["slow"])
    response = admin_client.post(
        reverse("admin:executions_execution_changelist"),
        {"action": "retry_executions", "_selected_action": [queued.pk]},
        follow=True,
    )
    assert "is QUEUED, not FAILED" in response.content.decode()


def test_submit_action_on_tasks_queues_them(admin_client, demo_agents):
    task = Task.objects.create(name="from admin", agent=demo_agents["text-stats"], input_data={"text": "Hi."})
    no_agent = Task.objects.create(name="How do I fix a leaky faucet?")  # no agent, and none fits
    response = admin_client.post(
        reverse("admin:executions_task_changelist"),
        {"action": "submit_tasks", "_selected_action": [task.pk, no_agent.pk]},
        follow=True,
    )
    assert Execution.objects.get().task == task
    content = response.content.decode()
    assert "Submitted 1 task(s)." in content and "No suitable agent: nothing here fits" in content


def test_every_model_has_an_admin_page(admin_client, demo_agents):
    for name in ("executions_task", "executions_execution", "executions_executionevent", "routing_agentconfig"):
        assert admin_client.get(reverse(f"admin:{name}_changelist")).status_code == 200


def test_execution_page_explains_its_routing_decision(admin_client, demo_agents):
    routed = execution_submit(input_data={"text": "How readable is this paragraph?"}, strategy="content_match")
    page = admin_client.get(reverse("admin:executions_execution_change", args=[routed.pk])).content.decode()
    assert "content_match" in page and "text-stats is the most relevant" in page
    assert "✔" in page and "flaky" in page  # every candidate is listed, the choice marked

    named = execution_submit(agent=demo_agents["slow"])
    page = admin_client.get(reverse("admin:executions_execution_change", args=[named.pk])).content.decode()
    assert "The agent was named at submit; no routing." in page


def test_agent_config_page_shows_which_variable_holds_the_key(admin_client, demo_agents):
    url = reverse("admin:routing_agentconfig_change", args=[demo_agents["slow"].pk])
    assert "secret_env" in admin_client.get(url).content.decode()


def test_admin_pages_render_text_no_submit_writes_any_more(admin_client, demo_agents):
    from tests.executions.stored_text import store_odd_text

    execution = execution_submit(agent=demo_agents["slow"])
    stored = store_odd_text(execution)

    pages = [
        reverse("admin:executions_execution_change", args=[execution.pk]),
        reverse("admin:executions_execution_changelist"),
        reverse("admin:executions_task_change", args=[execution.task_id]),
        reverse("admin:executions_task_changelist"),
        reverse("admin:executions_executionevent_changelist"),
    ]
    for url in pages:
        assert admin_client.get(url).status_code == 200, url
    if any(stored):  # SQLite keeps such text; PostgreSQL refuses it, and then there is nothing to show
        assert "\ufffd" in admin_client.get(pages[0]).content.decode()
