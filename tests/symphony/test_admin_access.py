"""The admin under the access model: every registered model is listed here with its rule.

``OWN_ROWS`` models list, for staff who are not operators, only their own rows
(``executions.access`` / ``workflows.access``); operators see all. Every other
model keeps Django's model permissions. A model registered later fails
``test_every_admin_model_has_a_rule`` until it is given one.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.urls import reverse

from executions.models import Execution, ExecutionEvent
from executions.models import ExecutionState as S
from executions.services import execution_submit
from tests.conftest import make_operator
from workflows.services import workflow_definition_save, workflow_run_start

pytestmark = pytest.mark.django_db


@dataclass
class Rows:
    mine: object
    theirs: object


# Model label -> the row of "mine" and of "theirs" to look for in its change list.
OWN_ROWS: dict[str, Callable[[dict], Rows]] = {
    "executions.execution": lambda w: Rows(w["mine"], w["theirs"]),
    "executions.task": lambda w: Rows(w["mine"].task, w["theirs"].task),
    "executions.executionevent": lambda w: Rows(w["mine"].events.first(), w["theirs"].events.first()),
    "workflows.workflowrun": lambda w: Rows(w["my_run"], w["their_run"]),
}
MODEL_PERMISSIONS = {
    "auth.group",
    "auth.user",
    "axes.accessattempt",
    "axes.accesslog",
    "axes.accessfailurelog",
    "django_q.schedule",
    "django_q.success",
    "django_q.failure",
    "django_q.ormq",
    "routing.agentconfig",
    "routing.routingcorrection",
    "symphony.apitoken",  # every user's tokens: for those who may audit and revoke them
    "workflows.workflowdefinition",
}


# django_q registers the admin of its ORM broker's queue only when that broker is in use.
REGISTERED = {model._meta.label_lower for model in admin.site._registry}


def test_every_admin_model_has_a_rule():
    assert not REGISTERED - (OWN_ROWS.keys() | MODEL_PERMISSIONS), "give each admin model a rule here"
    assert OWN_ROWS.keys() <= REGISTERED


def _view_permission(label: str) -> Permission:
    app_label, model = label.split(".")
    return Permission.objects.get(content_type__app_label=app_label, codename=f"view_{model}")


@pytest.fixture
def world(django_user_model, make_agent):
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    someone = django_user_model.objects.create_user("someone")
    agent = make_agent("echo")
    workflow_definition_save(source={"name": "flow", "steps": [{"id": "review", "approval": {}}]})
    return {
        "staff": staff,
        "mine": execution_submit(agent=agent, input_data={}, submitted_by=staff),
        "theirs": execution_submit(agent=agent, input_data={}, submitted_by=someone),
        "my_run": workflow_run_start(definition="flow", by=staff),
        "their_run": workflow_run_start(definition="flow", by=someone),
    }


def _change_url(row) -> str:
    return reverse(f"admin:{row._meta.app_label}_{row._meta.model_name}_change", args=[row.pk])


@pytest.mark.parametrize("label", sorted(OWN_ROWS))
@pytest.mark.parametrize("operator", [False, True], ids=["staff", "operator"])
def test_staff_see_their_own_rows_and_operators_all(client, world, label, operator):
    staff = world["staff"]
    staff.user_permissions.add(_view_permission(label))
    if operator:
        make_operator(staff)
    client.force_login(staff)
    rows = OWN_ROWS[label](world)
    app_label, model = label.split(".")

    page = client.get(reverse(f"admin:{app_label}_{model}_changelist")).content.decode()
    theirs = client.get(_change_url(rows.theirs))

    assert _change_url(rows.mine) in page
    assert (_change_url(rows.theirs) in page) is operator
    assert client.get(_change_url(rows.mine)).status_code == 200
    # Someone else's row is "not there", as a missing one would be: back to the admin's index.
    assert theirs.status_code == (200 if operator else 302)


@pytest.mark.parametrize("label", sorted(MODEL_PERMISSIONS & REGISTERED))
def test_other_models_need_their_model_permission_even_for_operators(client, world, label):
    staff = make_operator(world["staff"])
    client.force_login(staff)
    app_label, model = label.split(".")
    url = reverse(f"admin:{app_label}_{model}_changelist")

    assert client.get(url).status_code == 403
    staff.user_permissions.add(_view_permission(label))
    assert client.get(url).status_code == 200


def test_an_admin_action_touches_only_what_the_user_may_see(client, world):
    staff = world["staff"]
    staff.user_permissions.add(_view_permission("executions.execution"))
    client.force_login(staff)
    chosen = [world["mine"].pk, world["theirs"].pk]

    client.post(
        reverse("admin:executions_execution_changelist"),
        {"action": "cancel_executions", "_selected_action": chosen},
    )

    assert Execution.objects.get(pk=world["mine"].pk).state == S.CANCELLED
    assert Execution.objects.get(pk=world["theirs"].pk).state == S.QUEUED
    assert ExecutionEvent.objects.get(execution=world["mine"], to_state=S.CANCELLED).actor == staff


def test_the_event_list_and_inline_show_who_acted(admin_client, world):
    admin_client.post(
        reverse("admin:executions_execution_changelist"),
        {"action": "cancel_executions", "_selected_action": [world["theirs"].pk]},
    )

    events = admin_client.get(reverse("admin:executions_executionevent_changelist")).content.decode()
    execution_page = admin_client.get(_change_url(world["theirs"])).content.decode()

    # "someone" submitted it, "admin" cancelled it: both shown with the event they caused.
    assert re.findall(r'<td class="field-actor[^"]*">(\w+)</td>', events) == ["staff", "someone", "admin"]
    assert re.findall(r'<td class="field-actor">\s*<p><a href="[^"]+">(\w+)</a>', execution_page) == [
        "someone",
        "admin",
    ]
