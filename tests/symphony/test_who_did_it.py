"""Every action stores who did it on its event row, whichever interface it came through."""

import io

import pytest
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.urls import reverse

from executions.models import ExecutionEvent
from executions.models import ExecutionState as S
from executions.services import execution_submit

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", is_staff=True)


@pytest.fixture
def queued(make_agent, alice):
    return execution_submit(agent=make_agent("echo"), input_data={}, submitted_by=alice)


def _cancel_by_page(client, execution):
    client.post(reverse("executions:cancel", args=[execution.pk]))


def _cancel_by_api(client, execution):
    client.post(reverse("api:execution_cancel", kwargs={"execution_id": execution.pk}))


def _cancel_in_the_admin(client, execution):
    client.post(
        reverse("admin:executions_execution_changelist"),
        {"action": "cancel_executions", "_selected_action": [execution.pk]},
    )


@pytest.mark.parametrize("cancel", [_cancel_by_page, _cancel_by_api, _cancel_in_the_admin])
def test_a_cancel_stores_the_user_who_cancelled(client, alice, queued, cancel):
    alice.user_permissions.add(Permission.objects.get(content_type__app_label="executions", codename="view_execution"))
    client.force_login(alice)

    cancel(client, queued)

    event = ExecutionEvent.objects.get(execution=queued, to_state=S.CANCELLED)
    assert event.actor == alice


def test_a_cancel_from_the_cli_for_a_user_stores_that_user(alice, queued):
    call_command("symphony", "cancel", str(queued.pk), "--as", "alice", stdout=io.StringIO())
    assert ExecutionEvent.objects.get(execution=queued, to_state=S.CANCELLED).actor == alice


def test_the_execution_page_says_who_did_each_thing(client, alice, queued, django_user_model):
    operator = django_user_model.objects.create_superuser("olga")
    client.force_login(operator)
    client.post(reverse("executions:cancel", args=[queued.pk]))

    page = client.get(reverse("executions:detail", args=[queued.pk])).content.decode()

    history = page[page.index('class="panel history"') :]
    assert history.index('<div class="small muted actor">by alice</div>') < history.index(
        '<div class="small muted actor">by olga</div>'
    )
