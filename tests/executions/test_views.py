import json

import pytest
from django.db import connection
from django.urls import reverse

from executions.models import EventKind, Execution, ExecutionEvent
from executions.models import ExecutionState as S
from executions.services import execution_submit
from tests.conftest import make_operator
from tests.executions.stored_text import SHOWN_JSON_TEXT, SHOWN_TEXT, store_odd_text

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def logged_in(client, alice):
    """Alice operates the site: she sees executions submitted by anyone (who sees what: test_access.py)."""
    client.force_login(make_operator(alice))
    return client


def submit(agent, **options) -> Execution:
    return execution_submit(agent=agent, input_data=options.pop("input_data", {}), **options)


def set_fields(execution: Execution, **fields) -> Execution:
    """Test setup only: put values a worker or the router would have written."""
    Execution.objects.filter(pk=execution.pk).update(**fields)
    execution.refresh_from_db()
    return execution


# Access ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name", "needs_id"),
    [
        ("get", "executions:list", False),
        ("get", "executions:detail", True),
        ("post", "executions:submit", False),
        ("post", "executions:cancel", True),
        ("post", "executions:retry", True),
    ],
)
def test_it_sends_anonymous_visitors_to_the_login_page(client, make_agent, method, name, needs_id):
    execution = submit(make_agent("echo"))
    url = reverse(name, args=[execution.pk] if needs_id else [])

    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login") + "?next=")
    assert Execution.objects.get(pk=execution.pk).state == S.QUEUED


def test_the_login_page_logs_in_and_lands_on_the_executions(client, alice):
    page = client.get(reverse("login"))
    assert page.status_code == 200 and b'name="password"' in page.content

    response = client.post(reverse("login"), {"username": "alice", "password": "pw-alice-1234"}, follow=True)

    assert response.redirect_chain[-1][0] == reverse("executions:list")
    assert b"Submit a task" in response.content
    assert b'action="/accounts/logout/"' in response.content  # logging out is a POST form


# List ----------------------------------------------------------------------------------


def test_the_list_shows_executions_newest_first(logged_in, make_agent):
    agent = make_agent("echo")
    older = submit(agent, name="first run")
    newer = submit(agent, name="second run")

    html = logged_in.get(reverse("executions:list")).content.decode()

    assert f'id="execution-{older.pk}"' in html and f'id="execution-{newer.pk}"' in html
    assert html.index("second run") < html.index("first run")
    assert 'ws-connect="/ws/ui/executions/"' in html


def test_the_list_filters_by_state(logged_in, make_agent):
    agent = make_agent("echo")
    waiting = submit(agent, name="still waiting")
    cancelled = submit(agent, name="called off")
    logged_in.post(reverse("executions:cancel", args=[cancelled.pk]))

    html = logged_in.get(reverse("executions:list"), {"state": "CANCELLED"}).content.decode()

    assert f'id="execution-{cancelled.pk}"' in html
    assert f'id="execution-{waiting.pk}"' not in html
    assert 'ws-connect="/ws/ui/executions/?state=CANCELLED"' in html


def test_an_unknown_state_filter_shows_everything(logged_in, make_agent):
    execution = submit(make_agent("echo"))
    html = logged_in.get(reverse("executions:list"), {"state": "NONSENSE"}).content.decode()
    assert f'id="execution-{execution.pk}"' in html


def test_the_submit_form_offers_enabled_agents_and_auto(logged_in, make_agent):
    make_agent("echo", name="on-duty")
    make_agent("echo", name="off-duty", enabled=False)

    page = logged_in.get(reverse("executions:list")).content.decode()
    html = page[page.index('id="submit-form"') :].split("</form>")[0]

    assert 'value="on-duty"' in html
    assert "off-duty" not in html  # though the list's agent filter suggests it: its runs can be found
    assert "auto (let the router choose)" in html


# Submit ----------------------------------------------------------------------------------


def test_submitting_queues_the_task_and_opens_its_page(logged_in, alice, make_agent):
    make_agent("echo", name="echoer")

    response = logged_in.post(
        reverse("executions:submit"),
        {
            "agent": "echoer",
            "input": '{"question": "why?"}',
            "name": "Curious",
            "priority": "5",
            "timeout": "30",
            "max_attempts": "2",
        },
    )

    execution = Execution.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("executions:detail", args=[execution.pk])
    assert execution.state == S.QUEUED
    assert (execution.agent.name, execution.task.name, execution.task.input_data) == (
        "echoer",
        "Curious",
        {"question": "why?"},
    )
    assert (execution.priority, execution.timeout_seconds, execution.max_attempts) == (5, 30.0, 2)
    assert execution.submitted_by == alice


def test_bad_json_is_refused_clearly_and_nothing_typed_is_lost(logged_in, make_agent):
    make_agent("echo", name="echoer")
    typed = '{"question": "why?",}'

    response = logged_in.post(
        reverse("executions:submit"), {"agent": "echoer", "input": typed, "name": "Curious", "priority": "7"}
    )

    html = response.content.decode()
    assert response.status_code == 400
    assert "The input is not valid JSON" in html
    assert "{&quot;question&quot;: &quot;why?&quot;,}" in html  # the textarea keeps the text as typed
    assert 'value="Curious"' in html and 'value="7"' in html
    assert '<option value="echoer" selected>' in html
    assert not Execution.objects.exists()


def test_a_refused_submit_shows_the_services_reason(logged_in, make_agent, settings):
    make_agent("echo", name="echoer")
    depth = settings.SYMPHONY_MAX_JSON_DEPTH + 1  # valid JSON the form reads, that the service refuses

    response = logged_in.post(reverse("executions:submit"), {"agent": "echoer", "input": "[" * depth + "]" * depth})

    assert response.status_code == 400
    assert f"input is nested more than {depth - 1} levels deep" in response.content.decode()
    assert not Execution.objects.exists()


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ({"priority": "2147483648"}, "Ensure this value is less than or equal to 1000000."),
        ({"priority": "1e20"}, "Enter a whole number."),
        ({"timeout": "nan"}, "Enter a number."),
        ({"timeout": "1e20"}, "Ensure this value is less than or equal to 3600.0."),
        ({"max_attempts": "99999999999999999999"}, "Ensure this value is less than or equal to 100."),
        ({"input": "[" * 100_000 + "]" * 100_000}, "The input is nested more than 64 levels deep."),
        ({"input": "9" * 5_000}, "The input holds a number with too many digits to read."),
        ({"input": '{"t": "\\ud800"}'}, "input is not valid UTF-8: it holds &#x27;\\ud800&#x27;"),
        ({"name": "a\x00b"}, "Null characters are not allowed."),
    ],
)
def test_out_of_range_input_is_a_400_with_the_reason_next_to_the_field(logged_in, make_agent, typed, message):
    make_agent("echo", name="echoer")
    field = next(iter(typed))

    response = logged_in.post(reverse("executions:submit"), {"agent": "echoer", "input": "{}", **typed})

    html = response.content.decode()
    assert response.status_code == 400
    assert f'<p class="field-error" role="alert">{message}' in html, field
    assert not Execution.objects.exists()


def test_a_nul_in_the_input_is_stored_as_a_replacement_character(logged_in, make_agent):
    make_agent("echo", name="echoer")

    response = logged_in.post(
        reverse("executions:submit"), {"agent": "echoer", "input": '{"t": "a\\u0000b"}'}, follow=True
    )

    assert response.status_code == 200
    assert Execution.objects.get().task.input_data == {"t": "a\ufffdb"}


def test_auto_lets_the_router_choose_and_the_page_explains_why(logged_in, demo_agents):
    response = logged_in.post(
        reverse("executions:submit"),
        {"agent": "", "strategy": "content_match", "input": json.dumps({"text": "How readable is this paragraph?"})},
        follow=True,
    )

    execution = Execution.objects.get()
    html = response.content.decode()
    assert execution.routing and execution.routing["chosen"] == execution.agent.name
    assert f'id="execution-{execution.pk}-routing"' in html
    assert "Routing" in html and "content_match" in html
    assert execution.agent.name in html


# Detail ----------------------------------------------------------------------------------


def test_the_detail_page_shows_progress_steps_log_and_history(logged_in, make_agent):
    execution = submit(make_agent("echo"), name="Busy")
    set_fields(execution, progress=42.0, current_step="Reading", steps=["Starting", "Reading"])
    ExecutionEvent.objects.create(execution=execution, kind=EventKind.LOG, data={"lines": ["hello from the agent"]})
    ExecutionEvent.objects.create(execution=execution, kind=EventKind.OUTPUT, data={"text": "streamed words"})

    html = logged_in.get(reverse("executions:detail", args=[execution.pk])).content.decode()

    assert "Busy" in html and "QUEUED" in html
    assert 'aria-valuenow="42"' in html and "42%" in html
    assert "Reading" in html and "Starting" in html
    assert "hello from the agent" in html and "streamed words" in html
    assert "submitted" in html  # the first transition's reason, in the history
    last = ExecutionEvent.objects.filter(execution=execution).order_by("id").last()
    assert f'ws-connect="/ws/ui/executions/{execution.pk}/?after={last.pk}"' in html


def test_a_failed_execution_shows_its_error_and_can_be_retried(logged_in, make_agent, run):
    execution = run(submit(make_agent("boom"), max_attempts=1))
    assert execution.state == S.FAILED

    html = logged_in.get(reverse("executions:detail", args=[execution.pk])).content.decode()

    assert f'id="execution-{execution.pk}-error"' in html
    assert "RuntimeError" in html and "the agent broke" in html
    assert "Traceback" in html
    assert reverse("executions:retry", args=[execution.pk]) in html
    assert reverse("executions:cancel", args=[execution.pk]) not in html


def test_the_routing_panel_copes_with_missing_and_odd_keys(logged_in, make_agent):
    execution = submit(make_agent("echo", name="picked"))
    set_fields(
        execution,
        routing={
            "strategy": "load_balanced",
            "chosen": "picked",
            "candidates": [
                {"agent": "picked", "score": 0.91234, "running": 1, "queued": 2, "capacity": 4},
                {"agent": "other", "load": "busy"},
                "a-bare-name",
            ],
            "extra": {"why": "kept"},
        },
    )

    html = logged_in.get(reverse("executions:detail", args=[execution.pk])).content.decode()

    assert "load_balanced" in html and "0.912" in html
    assert "1 running 2 queued of 4" in html and "busy" in html and "a-bare-name" in html
    assert "kept" in html


def test_a_missing_execution_is_a_404(logged_in):
    assert logged_in.get(reverse("executions:detail", args=[999999])).status_code == 404


@pytest.mark.parametrize("execution_id", [0, 2**31, 2**63 - 1, 2**63, 10**30])
@pytest.mark.parametrize(("method", "action"), [("get", ""), ("post", "cancel/"), ("post", "retry/")])
def test_ids_no_row_can_have_are_a_404(logged_in, make_agent, method, action, execution_id):
    submit(make_agent("echo"))
    response = getattr(logged_in, method)(f"/executions/{execution_id}/{action}")
    assert response.status_code == 404


# Whatever is stored ------------------------------------------------------------------------


def test_pages_render_whatever_text_is_stored(logged_in, make_agent):
    execution = submit(make_agent("echo"))
    stored = store_odd_text(execution)

    detail = logged_in.get(reverse("executions:detail", args=[execution.pk]))
    listed = logged_in.get(reverse("executions:list"))
    header = logged_in.post(reverse("executions:cancel", args=[execution.pk]), **HTMX)

    assert (detail.status_code, listed.status_code, header.status_code) == (200, 200, 200)
    if connection.vendor == "sqlite":
        assert all(stored)
        html = detail.content.decode()
        assert html.count(SHOWN_JSON_TEXT) >= 8  # result, steps, usage, error, routing, log, history
        assert SHOWN_TEXT in html and SHOWN_TEXT in listed.content.decode()
        assert "\x00" not in html and "\x00" not in listed.content.decode()


# Cancel and retry --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["executions:cancel", "executions:retry"])
def test_actions_refuse_get(logged_in, make_agent, name):
    execution = submit(make_agent("echo"))
    response = logged_in.get(reverse(name, args=[execution.pk]))
    assert response.status_code == 405
    assert Execution.objects.get(pk=execution.pk).state == S.QUEUED


def test_cancel_from_the_page_cancels_and_returns_to_it(logged_in, make_agent):
    execution = submit(make_agent("echo"))

    response = logged_in.post(reverse("executions:cancel", args=[execution.pk]))

    assert response.status_code == 302 and response["Location"] == reverse("executions:detail", args=[execution.pk])
    execution.refresh_from_db()
    assert execution.state == S.CANCELLED
    assert execution.events.last().data["by"] == "alice"


def test_cancel_with_htmx_gets_the_header_partial(logged_in, make_agent):
    execution = submit(make_agent("echo"))

    response = logged_in.post(reverse("executions:cancel", args=[execution.pk]), **HTMX)

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith(f'<section id="execution-{execution.pk}-header"')
    assert "<html" not in html and "hx-swap-oob" not in html
    assert 'data-state="CANCELLED"' in html


def test_a_refused_cancel_shows_why_instead_of_failing(logged_in, make_agent):
    execution = submit(make_agent("echo"))
    logged_in.post(reverse("executions:cancel", args=[execution.pk]))

    page = logged_in.post(reverse("executions:cancel", args=[execution.pk]), follow=True)
    partial = logged_in.post(reverse("executions:cancel", args=[execution.pk]), **HTMX)

    refusal = "is CANCELLED, not PAUSED/PENDING/PREPARING/QUEUED/RUNNING"
    assert page.status_code == 200 and refusal in page.content.decode()
    assert partial.status_code == 409
    assert refusal in partial.content.decode()
    assert f'id="execution-{execution.pk}-header"' in partial.content.decode()


def test_retry_starts_a_new_attempt_of_a_failed_execution(logged_in, make_agent, run):
    execution = run(submit(make_agent("boom"), max_attempts=1))

    response = logged_in.post(reverse("executions:retry", args=[execution.pk]), **HTMX)

    execution.refresh_from_db()
    assert response.status_code == 200
    assert (execution.state, execution.attempt, execution.error) == (S.QUEUED, 2, None)
    assert 'data-state="QUEUED"' in response.content.decode()


def test_retry_of_a_queued_execution_is_refused_with_its_reason(logged_in, make_agent):
    execution = submit(make_agent("echo"))

    response = logged_in.post(reverse("executions:retry", args=[execution.pk]), follow=True)

    assert response.status_code == 200
    assert f"Execution {execution.pk} is QUEUED" in response.content.decode()
    assert Execution.objects.get(pk=execution.pk).state == S.QUEUED
