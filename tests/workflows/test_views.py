"""The workflow pages: definitions with a start form, runs, and a run's page with its controls."""

import json

import pytest
from django.urls import reverse

from tests.conftest import make_operator
from workflows.models import RunEvent, StepRun, WorkflowRun, WorkflowStatus
from workflows.services import workflow_run_cancel, workflow_run_start

pytestmark = pytest.mark.django_db

HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def logged_in(client, alice):
    """Alice operates the site: she sees runs started by anyone (who sees what: test_access.py)."""
    client.force_login(make_operator(alice))
    return client


@pytest.fixture
def approval_flow(define):
    """echo, then an approval only alice may decide, then echo again."""
    return define(
        [
            {"id": "first", "agent": "echo", "input": {"text": "{{ input.text }}"}},
            {"id": "review", "depends_on": ["first"], "approval": {"message": "Ship it?", "approvers": ["alice"]}},
            {"id": "last", "agent": "echo", "depends_on": ["review"], "input": {"done": True}},
        ],
        name="flow",
        description="Echo, a review, echo.",
    )


def waiting_run(approval_flow, work_off) -> WorkflowRun:
    run = workflow_run_start(definition="flow", input={"text": "hello"})
    work_off()
    run.refresh_from_db()
    assert run.status == WorkflowStatus.WAITING
    return run


# Access ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name", "args"),
    [
        ("get", "workflows:list", []),
        ("post", "workflows:start", []),
        ("get", "workflows:run", ["run"]),
        ("post", "workflows:pause", ["run"]),
        ("post", "workflows:cancel", ["run"]),
        ("post", "workflows:approve", ["run", "review"]),
    ],
)
def test_it_sends_anonymous_visitors_to_the_login_page(client, approval_flow, work_off, method, name, args):
    run = waiting_run(approval_flow, work_off)
    url = reverse(name, args=[run.pk if arg == "run" else arg for arg in args])

    response = getattr(client, method)(url)

    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))
    assert WorkflowRun.objects.get(pk=run.pk).status == WorkflowStatus.WAITING


@pytest.mark.parametrize("run_id", ["0", str(2**63), "9" * 30])
def test_run_ids_no_row_can_have_are_not_found(logged_in, run_id):
    assert logged_in.get(f"/workflows/runs/{run_id}/").status_code == 404
    assert logged_in.post(f"/workflows/runs/{run_id}/cancel/").status_code == 404


def test_an_unknown_run_is_not_found(logged_in):
    assert logged_in.get(reverse("workflows:run", args=[424242])).status_code == 404
    assert logged_in.post(reverse("workflows:pause", args=[424242]), **HTMX).status_code == 404


def test_the_top_bar_links_to_the_workflows(logged_in):
    page = logged_in.get(reverse("workflows:list")).content.decode()
    assert f'href="{reverse("workflows:list")}" aria-current="page">Workflows</a>' in page


# The list -----------------------------------------------------------------------------


def test_the_list_shows_definitions_with_a_start_form_and_recent_runs(logged_in, approval_flow, work_off):
    run = waiting_run(approval_flow, work_off)

    page = logged_in.get(reverse("workflows:list")).content.decode()

    assert "flow" in page and "v1 · 3 steps" in page and "Echo, a review, echo." in page
    assert f'action="{reverse("workflows:start")}"' in page and 'name="input"' in page
    assert f'<tr id="run-{run.pk}" class="status-waiting">' in page


def test_the_list_filters_runs_by_status_and_pages_older_ones(logged_in, approval_flow, work_off, monkeypatch):
    waiting = waiting_run(approval_flow, work_off)
    cancelled = [workflow_run_cancel(run=workflow_run_start(definition="flow")) for _ in range(3)]

    page = logged_in.get(reverse("workflows:list"), {"status": "CANCELLED"}).content.decode()
    assert all(f'id="run-{run.pk}"' in page for run in cancelled)
    assert f'id="run-{waiting.pk}"' not in page

    monkeypatch.setattr("workflows.selectors.RUNS_PER_PAGE", 2)
    first = logged_in.get(reverse("workflows:list"), {"status": "CANCELLED"}).content.decode()
    assert f"before={cancelled[1].pk}" in first and f'id="run-{cancelled[0].pk}"' not in first
    older = logged_in.get(reverse("workflows:list"), {"status": "CANCELLED", "before": cancelled[1].pk}).content
    assert f'id="run-{cancelled[0].pk}"'.encode() in older and b"Older runs" not in older


def test_starting_from_the_page_opens_the_new_run(logged_in, approval_flow, alice):
    response = logged_in.post(reverse("workflows:start"), {"definition": "flow", "input": '{"text": "hi"}'})

    run = WorkflowRun.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("workflows:run", args=[run.pk])
    assert run.input == {"text": "hi"} and run.created_by == alice and run.status == WorkflowStatus.RUNNING


@pytest.mark.parametrize(
    ("definition", "text", "reason"),
    [
        ("flow", '{"text": ', "The input is not valid JSON"),
        ("flow", json.dumps({"text": "x" * 2_000_000}), "input may be at most"),
        ("ghost", "{}", "No workflow named &#x27;ghost&#x27;"),
    ],
)
def test_a_refused_start_says_why_and_writes_nothing(logged_in, approval_flow, definition, text, reason):
    response = logged_in.post(reverse("workflows:start"), {"definition": definition, "input": text})

    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not WorkflowRun.objects.exists() and not RunEvent.objects.exists()


# The run page --------------------------------------------------------------------------


def test_the_run_page_shows_status_timings_graph_steps_and_history(logged_in, approval_flow, work_off):
    run = waiting_run(approval_flow, work_off)
    first = StepRun.objects.get(run=run, step_id="first")

    page = logged_in.get(reverse("workflows:run", args=[run.pk])).content.decode()

    assert 'data-status="WAITING"' in page and "Ship it?" in page
    assert f'ws-connect="/ws/ui/workflows/runs/{run.pk}/"' in page
    assert f'id="run-{run.pk}-node-first" class="dag-node state-completed" data-state="COMPLETED"' in page
    assert f'id="run-{run.pk}-node-review" class="dag-node state-waiting"' in page
    assert f'id="run-{run.pk}-node-last" class="dag-node state-not_started" data-state="NOT_STARTED"' in page
    assert f'<a href="/executions/{first.execution_id}/" class="dag-link">' in page
    assert f'id="run-{run.pk}-step-first"' in page and "&quot;hello&quot;" in page  # the output preview
    assert "run PENDING → RUNNING" in page and "step review: WAITING" in page
    assert "Pause" in page and "Cancel" in page and "Resume" not in page


def test_a_run_with_more_steps_than_a_picture_shows_lists_them(logged_in, define, monkeypatch):
    define([{"id": f"s{number}", "agent": "echo"} for number in range(5)])
    run = workflow_run_start(definition="wf")
    monkeypatch.setattr("workflows.dag.MAX_DRAWN_STEPS", 4)

    page = logged_in.get(reverse("workflows:run", args=[run.pk])).content.decode()

    assert "<svg" not in page and "more than the 4 a picture can show" in page
    assert all(f'id="run-{run.pk}-step-s{number}"' in page for number in range(5))


def test_an_ended_run_shows_its_duration_output_and_a_re_run_form(logged_in, define, work_off):
    define([{"id": "only", "agent": "echo", "input": {"n": 1}}])
    run = workflow_run_start(definition="wf")
    work_off()

    page = logged_in.get(reverse("workflows:run", args=[run.pk])).content.decode()

    assert 'data-status="COMPLETED"' in page and " s</dd>" in page  # the duration
    assert f'action="{reverse("workflows:rerun", args=[run.pk])}"' in page
    assert "Pause" not in page and ">Cancel<" not in page


# Controls ------------------------------------------------------------------------------


def test_pause_and_resume_call_the_services_and_answer_with_the_header(logged_in, approval_flow, alice):
    run = workflow_run_start(definition="flow", input={"text": "x"})

    paused = logged_in.post(reverse("workflows:pause", args=[run.pk]), **HTMX)
    assert paused.status_code == 200
    assert paused.content.decode().startswith(f'\n<section id="run-{run.pk}-header" class="panel header">')
    assert 'data-status="PAUSED"' in paused.content.decode()
    assert f'id="run-{run.pk}-history" class="panel history" hx-swap-oob="true"' in paused.content.decode()
    assert RunEvent.objects.filter(run=run, data__action="pause", actor=alice).exists()

    resumed = logged_in.post(reverse("workflows:resume", args=[run.pk]), **HTMX)
    assert resumed.status_code == 200 and 'data-status="RUNNING"' in resumed.content.decode()


def test_a_refused_action_is_a_409_shown_in_place(logged_in, approval_flow):
    run = workflow_run_cancel(run=workflow_run_start(definition="flow"))

    response = logged_in.post(reverse("workflows:pause", args=[run.pk]), **HTMX)

    assert response.status_code == 409
    shown = response.content.decode()
    assert 'role="alert"' in shown and "only a pending, running or waiting run" in shown
    assert WorkflowRun.objects.get(pk=run.pk).status == WorkflowStatus.CANCELLED


def test_without_htmx_an_action_redirects_back_to_the_run(logged_in, approval_flow):
    run = workflow_run_start(definition="flow")

    response = logged_in.post(reverse("workflows:cancel", args=[run.pk]))

    assert response.status_code == 302 and response["Location"] == reverse("workflows:run", args=[run.pk])
    assert WorkflowRun.objects.get(pk=run.pk).status == WorkflowStatus.CANCELLED


def test_an_approver_sees_the_form_and_approving_moves_the_run_on(logged_in, approval_flow, work_off, alice):
    run = waiting_run(approval_flow, work_off)
    page = logged_in.get(reverse("workflows:run", args=[run.pk])).content.decode()
    assert f'hx-post="{reverse("workflows:approve", args=[run.pk, "review"])}"' in page

    response = logged_in.post(reverse("workflows:approve", args=[run.pk, "review"]), {"comment": "looks good"}, **HTMX)

    assert response.status_code == 200
    review = StepRun.objects.get(run=run, step_id="review")
    assert (review.state, review.decided_by, review.comment) == ("COMPLETED", alice, "looks good")
    assert f'id="run-{run.pk}-decisions" class="panel decisions" hidden hx-swap-oob="true"' in response.content.decode()
    work_off()
    assert WorkflowRun.objects.get(pk=run.pk).status == WorkflowStatus.COMPLETED


def test_a_user_who_may_not_decide_sees_no_form_and_is_refused(client, approval_flow, work_off, bob):
    run = waiting_run(approval_flow, work_off)
    client.force_login(make_operator(bob))  # bob sees every run, but the step names alice

    page = client.get(reverse("workflows:run", args=[run.pk])).content.decode()
    assert "Waiting for alice; you may not decide this step." in page
    assert reverse("workflows:approve", args=[run.pk, "review"]) not in page

    response = client.post(reverse("workflows:reject", args=[run.pk, "review"]), {"comment": "no"}, **HTMX)

    assert response.status_code == 409 and "bob may not decide step" in response.content.decode()
    assert StepRun.objects.get(run=run, step_id="review").state == "WAITING"


def test_rejecting_fails_the_run_and_it_can_be_re_run_with_edited_input(logged_in, approval_flow, work_off):
    run = waiting_run(approval_flow, work_off)
    rejected = logged_in.post(reverse("workflows:reject", args=[run.pk, "review"]), {"comment": "typo"}, **HTMX)
    assert rejected.status_code == 200 and 'data-status="FAILED"' in rejected.content.decode()

    response = logged_in.post(
        reverse("workflows:rerun", args=[run.pk]), {"from_step": "first", "input": '{"text": "fixed"}'}, **HTMX
    )

    assert response.status_code == 200
    run.refresh_from_db()
    assert run.input == {"text": "fixed"} and run.status == WorkflowStatus.RUNNING
    assert RunEvent.objects.filter(run=run, data__action="rerun", data__input_changed=True).exists()


def test_a_re_run_with_bad_input_is_refused_in_place(logged_in, define, work_off):
    define([{"id": "only", "agent": "echo"}])
    run = workflow_run_start(definition="wf", input={"a": 1})
    work_off()

    response = logged_in.post(reverse("workflows:rerun", args=[run.pk]), {"from_step": "only", "input": "{"}, **HTMX)

    assert response.status_code == 409 and "not valid JSON" in response.content.decode()
    assert not RunEvent.objects.filter(run=run, data__action="rerun").exists()


# Approvers who may not see the run ------------------------------------------------------------


@pytest.fixture
def bobs_approval(define, alice):
    """A run of alice's waiting for an approval that names bob (not alice)."""
    define([{"id": "review", "approval": {"message": "ok?", "approvers": ["bob"]}}], name="ask-bob")
    return workflow_run_start(definition="ask-bob", by=alice)


def test_a_named_approver_decides_a_run_they_cannot_see_and_is_sent_to_the_list(client, bobs_approval, bob):
    client.force_login(bob)
    assert client.get(reverse("workflows:run", args=[bobs_approval.pk])).status_code == 404

    response = client.post(reverse("workflows:approve", args=[bobs_approval.pk, "review"]), {"comment": "fine"})

    assert response.status_code == 302 and response["Location"] == reverse("workflows:list")
    assert StepRun.objects.get(run=bobs_approval, step_id="review").decided_by == bob
    assert f"Decided step review of run {bobs_approval.pk}." in client.get(reverse("workflows:list")).content.decode()


def test_with_htmx_a_named_approver_is_redirected_by_the_client(client, bobs_approval, bob):
    client.force_login(bob)
    response = client.post(reverse("workflows:reject", args=[bobs_approval.pk, "review"]), **HTMX)
    assert response["HX-Redirect"] == reverse("workflows:list")
    assert WorkflowRun.objects.get(pk=bobs_approval.pk).status == WorkflowStatus.FAILED


def test_the_owner_may_not_approve_a_step_that_names_someone_else(logged_in, bobs_approval):
    response = logged_in.post(reverse("workflows:approve", args=[bobs_approval.pk, "review"]), **HTMX)
    assert response.status_code == 409 and "alice may not decide step" in response.content.decode()


def test_a_stranger_cannot_decide_nor_learn_that_the_run_exists(client, bobs_approval, django_user_model):
    client.force_login(django_user_model.objects.create_user("carol"))
    for action in ("workflows:approve", "workflows:reject"):
        assert client.post(reverse(action, args=[bobs_approval.pk, "review"])).status_code == 404
    assert client.post(reverse("workflows:approve", args=[424242, "review"])).status_code == 404
    assert StepRun.objects.get(run=bobs_approval, step_id="review").state == "WAITING"
