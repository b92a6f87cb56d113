"""Runs of workflow definitions: every pattern, driven by the real worker loop in this process."""

import pytest

from executions.models import Execution
from executions.models import ExecutionState as ES
from executions.services import execution_submit
from executions.signals import outcome_hooks
from workflows.models import RunEvent, StepRun, StepState, WorkflowStatus
from workflows.recovery import repair_runs
from workflows.services import (
    WorkflowError,
    workflow_definition_save,
    workflow_run_cancel,
    workflow_run_pause,
    workflow_run_rerun,
    workflow_run_resume,
    workflow_run_start,
    workflow_step_approve,
    workflow_step_reject,
)

pytestmark = pytest.mark.django_db


def steps_of(run):
    return {row.step_id: row for row in StepRun.objects.filter(run=run, superseded=False, index=0)}


def test_a_sequence_passes_outputs_along_and_completes(define, work_off):
    define([
        {"id": "first", "agent": "echo", "input": {"n": "{{ input.n }}"}},
        {"id": "second", "agent": "echo", "depends_on": ["first"],
         "input": {"got": "{{ steps.first.output.echo.n }}", "text": "n={{ input.n }}"}},
    ])  # fmt: skip
    run = workflow_run_start(definition="wf", input={"n": 7})
    assert run.status == WorkflowStatus.RUNNING

    work_off()

    run.refresh_from_db()
    assert run.status == WorkflowStatus.COMPLETED and run.finished_at is not None
    assert run.output == {"second": {"echo": {"got": 7, "text": "n=7"}, "attempt": 1}}
    assert {step: row.state for step, row in steps_of(run).items()} == {"first": "COMPLETED", "second": "COMPLETED"}


def test_fan_out_and_fan_in(define, work_off):
    define([
        {"id": "split", "agent": "echo", "input": {"x": 1}},
        {"id": "left", "agent": "echo", "input": {"side": "left"}, "depends_on": ["split"]},
        {"id": "right", "agent": "echo", "input": {"side": "right"}, "depends_on": ["split"]},
        {"id": "join", "agent": "echo", "depends_on": ["left", "right"],
         "input": {"sides": ["{{ steps.left.output.echo.side }}", "{{ steps.right.output.echo.side }}"]}},
    ])  # fmt: skip
    run = workflow_run_start(definition="wf")
    work_off()

    run.refresh_from_db()
    assert run.status == WorkflowStatus.COMPLETED
    assert run.output["join"]["echo"] == {"sides": ["left", "right"]}
    assert StepRun.objects.filter(run=run).count() == 4  # each step ran once


def test_a_false_condition_skips_the_step_and_its_dependents_still_run(define, work_off):
    define([
        {"id": "check", "agent": "echo", "input": {"ok": False}},
        {"id": "only_if_ok", "agent": "echo", "depends_on": ["check"], "condition": "steps.check.output.echo.ok"},
        {"id": "otherwise", "agent": "echo", "depends_on": ["check"], "condition": "!(steps.check.output.echo.ok)"},
        {"id": "after", "agent": "echo", "depends_on": ["only_if_ok", "otherwise"], "input": {"done": True}},
    ])  # fmt: skip
    run = workflow_run_start(definition="wf")
    work_off()

    run.refresh_from_db()
    states = {step: row.state for step, row in steps_of(run).items()}
    assert states == {"check": "COMPLETED", "only_if_ok": "SKIPPED", "otherwise": "COMPLETED", "after": "COMPLETED"}
    assert run.status == WorkflowStatus.COMPLETED


def test_a_failing_step_fails_the_run_and_keeps_the_other_outputs(define, work_off):
    define([
        {"id": "good", "agent": "echo", "input": {"kept": True}},
        {"id": "bad", "agent": "boom", "retries": 0},
        {"id": "later", "agent": "echo", "depends_on": ["bad"]},
    ])  # fmt: skip
    run = workflow_run_start(definition="wf")
    work_off()

    run.refresh_from_db()
    steps = steps_of(run)
    assert run.status == WorkflowStatus.FAILED
    assert run.error["step"] == "bad" and "the agent broke" in run.error["message"]
    assert steps["good"].output["echo"] == {"kept": True}
    assert steps["bad"].state == StepState.FAILED and "later" not in steps


def test_re_run_from_a_failed_step_keeps_what_succeeded(define, work_off, make_agent):
    define([
        {"id": "good", "agent": "echo", "input": {"kept": True}},
        {"id": "flaky", "agent": "echo", "depends_on": ["good"], "input": {"fail": "{{ input.fail }}"}},
        {"id": "check", "agent": "echo", "depends_on": ["flaky"],
         "condition": "!(steps.flaky.output.echo.fail)", "input": {}},
        {"id": "gate", "agent": "boom", "depends_on": ["check"], "condition": "input.fail"},
    ])  # fmt: skip
    run = workflow_run_start(definition="wf", input={"fail": True})
    work_off()
    run.refresh_from_db()
    assert run.status == WorkflowStatus.FAILED
    good = steps_of(run)["good"]

    with pytest.raises(WorkflowError, match="no step 'nope'"):
        workflow_run_rerun(run=run, from_step="nope")
    run = workflow_run_rerun(run=run, from_step="flaky", input={"fail": False})
    work_off()

    run.refresh_from_db()
    steps = steps_of(run)
    assert run.status == WorkflowStatus.COMPLETED
    assert steps["good"].pk == good.pk  # not run again
    assert steps["flaky"].output["echo"] == {"fail": False} and steps["gate"].state == StepState.SKIPPED
    assert StepRun.objects.filter(run=run, superseded=True).exists()
    assert RunEvent.objects.filter(run=run, data__action="rerun").count() == 1


def test_map_runs_once_per_item_and_gathers_in_order(define, work_off):
    define([
        {"id": "each", "agent": "echo", "map": "input.items", "max_concurrent": 5,
         "input": {"item": "{{ item }}", "index": "{{ index }}"}},
        {"id": "total", "agent": "echo", "depends_on": ["each"], "input": {"n": "{{ length(steps.each.output) }}"}},
    ])  # fmt: skip
    run = workflow_run_start(definition="wf", input={"items": [f"i{n}" for n in range(50)]})
    work_off()

    run.refresh_from_db()
    assert run.status == WorkflowStatus.COMPLETED
    each = StepRun.objects.filter(run=run, step_id="each").order_by("index")
    assert [row.output["echo"] for row in each] == [{"item": f"i{n}", "index": n} for n in range(50)]
    assert run.output == {"total": {"echo": {"n": 50}, "attempt": 1}}
    groups = {row.execution.concurrency_group_id for row in each.select_related("execution")}
    assert len(groups) == 1 and each[0].execution.concurrency_group.max_concurrent == 5


def test_a_map_over_nothing_completes_with_an_empty_list(define, work_off):
    define([{"id": "each", "agent": "echo", "map": "input.items"}])
    run = workflow_run_start(definition="wf", input={"items": []})
    run.refresh_from_db()
    assert (run.status, run.output) == (WorkflowStatus.COMPLETED, {"each": []})


def test_a_loop_repeats_until_its_condition_holds(define, work_off):
    define([
        {"id": "count", "agent": "echo", "input": {"i": "{{ iteration }}"},
         "until": "output.echo.i >= `3`", "max_iterations": 5},
    ])  # fmt: skip
    run = workflow_run_start(definition="wf")
    work_off()

    run.refresh_from_db()
    rows = StepRun.objects.filter(run=run, step_id="count").order_by("iteration")
    assert [row.output["echo"]["i"] for row in rows] == [1, 2, 3]
    assert run.status == WorkflowStatus.COMPLETED and run.output["count"]["echo"] == {"i": 3}


def test_a_loop_that_never_holds_fails_at_its_bound(define, work_off):
    define([{"id": "count", "agent": "echo", "until": "`false`", "max_iterations": 2}])
    run = workflow_run_start(definition="wf")
    work_off()
    run.refresh_from_db()
    assert run.status == WorkflowStatus.FAILED and "not met after 2 iterations" in run.error["message"]


def test_approval_waits_for_a_permitted_user(define, work_off, django_user_model):
    define([
        {"id": "draft", "agent": "echo", "input": {"text": "hello"}},
        {"id": "review", "approval": {"message": "Publish?", "approvers": ["alice"]}, "depends_on": ["draft"]},
        {"id": "publish", "agent": "echo", "depends_on": ["review"], "input": {"by": "{{ steps.review.output.by }}"}},
    ])  # fmt: skip
    alice = django_user_model.objects.create_user("alice")
    mallory = django_user_model.objects.create_user("mallory")
    run = workflow_run_start(definition="wf")
    work_off()
    run.refresh_from_db()
    assert run.status == WorkflowStatus.WAITING and steps_of(run)["review"].state == StepState.WAITING

    with pytest.raises(WorkflowError, match="mallory may not decide"):
        workflow_step_approve(run=run, step_id="review", by=mallory)
    run = workflow_step_approve(run=run, step_id="review", by=alice, comment="ship it")
    work_off()

    run.refresh_from_db()
    assert run.status == WorkflowStatus.COMPLETED
    assert run.output["publish"]["echo"] == {"by": "alice"}
    review = steps_of(run)["review"]
    assert (review.decided_by, review.comment) == (alice, "ship it")
    assert RunEvent.objects.get(run=run, data__action="approve").actor == alice


def test_a_rejection_fails_the_run(define, work_off, django_user_model):
    define(
        [{"id": "review", "approval": {"message": "ok?"}}, {"id": "after", "agent": "echo", "depends_on": ["review"]}]
    )
    bob = django_user_model.objects.create_user("bob")
    run = workflow_run_start(definition="wf", by=bob)
    run = workflow_step_reject(run=run, step_id="review", by=bob, comment="no")
    assert run.status == WorkflowStatus.FAILED and run.error["message"] == "rejected by bob: no"
    with pytest.raises(WorkflowError, match="not waiting for approval"):
        workflow_step_approve(run=run, step_id="review", by=None)


def test_pause_lets_running_steps_finish_and_starts_nothing_until_resumed(define, work_off):
    define([{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "depends_on": ["a"]}])
    run = workflow_run_start(definition="wf")
    run = workflow_run_pause(run=run)
    work_off()

    run.refresh_from_db()
    assert run.status == WorkflowStatus.PAUSED
    assert steps_of(run)["a"].state == StepState.COMPLETED and "b" not in steps_of(run)

    run = workflow_run_resume(run=run)
    work_off()
    run.refresh_from_db()
    assert run.status == WorkflowStatus.COMPLETED
    actions = list(RunEvent.objects.filter(run=run, kind="action").values_list("data__action", flat=True))
    assert actions == ["start", "pause", "resume"]


def test_cancel_cancels_running_steps_and_starts_nothing(define, work_off):
    define([{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "depends_on": ["a"]}])
    run = workflow_run_start(definition="wf")
    run = workflow_run_cancel(run=run)
    work_off()

    run.refresh_from_db()
    assert run.status == WorkflowStatus.CANCELLED
    a = steps_of(run)["a"]
    assert a.state == StepState.CANCELLED and a.execution.state == ES.CANCELLED
    with pytest.raises(WorkflowError, match="already ended"):
        workflow_run_cancel(run=run)


def test_a_run_keeps_the_version_it_started_with(define, work_off):
    first = define([{"id": "a", "agent": "echo", "input": {"v": 1}}])
    run = workflow_run_start(definition="wf")
    second = define([{"id": "a", "agent": "echo", "input": {"v": 2}}])
    assert (first.number, second.number) == (1, 2)
    assert define([{"id": "a", "agent": "echo", "input": {"v": 2}}]) == second  # unchanged: no new version

    work_off()
    run.refresh_from_db()
    assert run.version == first and run.output["a"]["echo"] == {"v": 1}


def test_a_run_left_between_steps_is_repaired_by_the_dispatcher(define, work_off, monkeypatch):
    define([{"id": "a", "agent": "echo"}, {"id": "b", "agent": "echo", "depends_on": ["a"]}])
    run = workflow_run_start(definition="wf")
    monkeypatch.setattr("executions.signals.outcome_hooks", [], raising=True)
    monkeypatch.setattr("executions.state.outcome_hooks", [])  # as if the advance had been lost
    work_off()
    monkeypatch.undo()
    assert outcome_hooks  # the real registry is back
    run.refresh_from_db()
    assert run.status == WorkflowStatus.RUNNING and steps_of(run)["a"].state == StepState.RUNNING

    assert repair_runs() >= 1
    work_off()
    run.refresh_from_db()
    assert run.status == WorkflowStatus.COMPLETED


def test_an_unknown_agent_at_run_time_fails_the_step_with_the_reason(define, work_off):
    from routing.models import AgentConfig

    define([{"id": "a", "agent": "echo"}])
    AgentConfig.objects.filter(name="echo").update(enabled=False)
    run = workflow_run_start(definition="wf")
    run.refresh_from_db()
    assert run.status == WorkflowStatus.FAILED and "disabled" in run.error["message"]


def test_plain_executions_are_untouched_by_workflows(make_agent, run):
    execution = run(execution_submit(agent=make_agent("echo")))
    assert execution.state == ES.COMPLETED and not StepRun.objects.exists()
    assert Execution.objects.count() == 1


def test_steps_routed_by_capability_reach_the_matching_agents(demo_agents, work_off):
    workflow_definition_save(source={"name": "routed", "steps": [
        {"id": "analyse", "route": {"strategy": "capability_match", "tags": ["readability"]},
         "input": {"text": "{{ input.text }}"}},
        {"id": "wait", "route": {"strategy": "capability_match", "tags": ["slow"]}, "depends_on": ["analyse"],
         "input": {"seconds": 0, "steps": 1}},
    ]})  # fmt: skip
    run = workflow_run_start(definition="routed", input={"text": "One. Two."})
    work_off()

    run.refresh_from_db()
    steps = steps_of(run)
    assert run.status == WorkflowStatus.COMPLETED
    assert {step: row.execution.agent.name for step, row in steps.items()} == {"analyse": "text-stats", "wait": "slow"}
    assert steps["analyse"].execution.routing["strategy"] == "capability_match"
    assert steps["analyse"].output["sentences"] == 2
