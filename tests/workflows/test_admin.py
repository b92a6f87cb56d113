"""The workflows admin: definitions validated before they are stored, runs controlled by actions."""

import html
import json

import pytest
from django.urls import reverse

from workflows.models import WorkflowDefinition, WorkflowRun, WorkflowStatus
from workflows.services import workflow_definition_save, workflow_run_start

pytestmark = pytest.mark.django_db


def test_a_bad_definition_is_refused_with_step_and_field_and_nothing_stored(admin_client, make_agent):
    make_agent("echo")
    source = json.dumps({"name": "bad", "steps": [{"id": "a", "agent": "echo", "depends_on": ["zz"]}]})
    page = admin_client.post(reverse("admin:workflows_workflowdefinition_add"), {"source": source})
    assert page.status_code == 200
    assert 'step "a", field "depends_on"' in html.unescape(page.content.decode())
    assert not WorkflowDefinition.objects.exists()


def test_a_good_definition_is_stored_and_a_change_is_a_new_version(admin_client, make_agent):
    make_agent("echo")
    url = reverse("admin:workflows_workflowdefinition_add")
    source = {"name": "good", "steps": [{"id": "a", "agent": "echo"}]}
    assert admin_client.post(url, {"source": json.dumps(source)}).status_code == 302
    definition = WorkflowDefinition.objects.get(name="good")
    source["steps"][0]["input"] = {"v": 2}
    change = reverse("admin:workflows_workflowdefinition_change", args=[definition.pk])
    assert '"id": "a"' in html.unescape(admin_client.get(change).content.decode())
    assert admin_client.post(change, {"source": json.dumps(source)}).status_code == 302
    assert list(definition.versions.values_list("number", flat=True)) == [2, 1]


def test_actions_start_and_control_runs(admin_client, make_agent):
    make_agent("echo")
    version = workflow_definition_save(source={"name": "acts", "steps": [{"id": "a", "agent": "echo"}]})
    admin_client.post(reverse("admin:workflows_workflowdefinition_changelist"),
                      {"action": "start_runs", "_selected_action": [version.definition.pk]})  # fmt: skip
    run = WorkflowRun.objects.get()
    assert run.status == WorkflowStatus.RUNNING
    runs = reverse("admin:workflows_workflowrun_changelist")
    admin_client.post(runs, {"action": "pause_runs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == WorkflowStatus.PAUSED
    admin_client.post(runs, {"action": "cancel_runs", "_selected_action": [run.pk]})
    run.refresh_from_db()
    assert run.status == WorkflowStatus.CANCELLED
    page = admin_client.post(runs, {"action": "cancel_runs", "_selected_action": [run.pk]}, follow=True)
    assert "already ended" in page.content.decode()
    assert admin_client.get(reverse("admin:workflows_workflowrun_change", args=[run.pk])).status_code == 200


def test_the_run_page_in_the_admin_cannot_change_status(admin_client, make_agent):
    make_agent("echo")
    workflow_definition_save(source={"name": "ro", "steps": [{"id": "a", "agent": "echo"}]})
    run = workflow_run_start(definition="ro")
    admin_client.post(reverse("admin:workflows_workflowrun_change", args=[run.pk]), {"status": "COMPLETED"})
    run.refresh_from_db()
    assert run.status == WorkflowStatus.RUNNING


def test_approve_reject_and_rerun_are_admin_actions(admin_client, make_agent, admin_user):
    make_agent("echo")
    make_agent("boom")
    workflow_definition_save(source={"name": "ok", "steps": [{"id": "review", "approval": {"message": "?"}}]})
    runs = reverse("admin:workflows_workflowrun_changelist")
    approved, rejected = workflow_run_start(definition="ok"), workflow_run_start(definition="ok")
    admin_client.post(runs, {"action": "approve_steps", "_selected_action": [approved.pk]})
    admin_client.post(runs, {"action": "reject_steps", "_selected_action": [rejected.pk]})
    approved.refresh_from_db()
    rejected.refresh_from_db()
    assert (approved.status, rejected.status) == (WorkflowStatus.COMPLETED, WorkflowStatus.FAILED)
    assert approved.steps.get().decided_by == admin_user

    admin_client.post(runs, {"action": "rerun_from_failed", "_selected_action": [rejected.pk]})
    rejected.refresh_from_db()
    assert rejected.status == WorkflowStatus.WAITING  # the approval step asks again
    page = admin_client.post(runs, {"action": "rerun_from_failed", "_selected_action": [approved.pk]}, follow=True)
    assert "no failed or cancelled step" in page.content.decode()


def test_a_run_page_shows_indented_json_progress_and_its_live_page(admin_client, make_agent):
    make_agent("echo")
    workflow_definition_save(
        source={"name": "shown", "steps": [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo"}]}
    )
    run = workflow_run_start(definition="shown", input={"n": 1})

    page = admin_client.get(reverse("admin:workflows_workflowrun_change", args=[run.pk])).content.decode()
    listing = admin_client.get(reverse("admin:workflows_workflowrun_changelist")).content.decode()

    assert "{\n  &quot;n&quot;: 1\n}" in page
    assert f'href="{reverse("workflows:run", args=[run.pk])}" class="viewsitelink"' in page
    assert '<progress value="0" max="100"' in listing
