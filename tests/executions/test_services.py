import pytest
from django.test import override_settings

from executions.models import Execution, Task
from executions.models import ExecutionState as S
from executions.services import (
    SubmitError,
    execution_cancel,
    execution_release,
    execution_retry,
    execution_submit,
    task_create,
)
from executions.state import InvalidTransition
from executions.wakeups import broker

pytestmark = pytest.mark.django_db


def queued_messages() -> int:
    return broker().queue_size()


def test_submit_creates_task_and_queued_execution_and_hands_it_to_workers(
    make_agent, django_capture_on_commit_callbacks
):
    agent = make_agent("echo", default_timeout=12)
    before = queued_messages()

    with django_capture_on_commit_callbacks(execute=True):
        execution = execution_submit(agent=agent, input_data={"q": 1}, name="Ask")

    assert execution.state == S.QUEUED
    assert (execution.task.name, execution.task.input_data, execution.task.agent) == ("Ask", {"q": 1}, agent)
    assert execution.timeout_seconds == 12
    assert execution.queued_at is not None
    assert [e.to_state for e in execution.events.all()] == [S.QUEUED]
    assert queued_messages() == before + 1


def test_submit_of_an_existing_task_uses_its_agent(make_agent):
    agent = make_agent("echo")
    task = task_create(name="t", input_data={"a": 1}, agent=agent)
    execution = execution_submit(task=task)
    assert (execution.task, execution.agent) == (task, agent)


def test_a_held_submit_waits_pending_until_released(make_agent, django_capture_on_commit_callbacks):
    execution = execution_submit(agent=make_agent("echo"), hold=True)
    assert execution.state == S.PENDING and execution.queued_at is None

    with django_capture_on_commit_callbacks(execute=True):
        execution = execution_release(execution=execution)

    assert execution.state == S.QUEUED and execution.queued_at is not None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"input_data": {"bad": {1, 2}}}, "must be JSON"),
        ({"timeout": 0}, "positive number"),
        ({"timeout": 10**9}, "may not exceed"),
        ({"max_attempts": 0}, "at least 1"),
        ({"metadata": {"x": object()}}, "must be JSON"),
    ],
)
def test_bad_submits_are_refused_with_a_clear_error_and_write_nothing(make_agent, options, message):
    agent = make_agent("echo")
    with pytest.raises(SubmitError, match=message):
        execution_submit(agent=agent, **options)
    assert not Execution.objects.exists() and not Task.objects.exists()


def test_submit_without_any_agent_is_refused(db):
    task = Task.objects.create(name="orphan")
    with pytest.raises(SubmitError, match="No suitable agent: nothing here fits"):
        execution_submit(task=task)


def test_submit_to_a_disabled_agent_is_refused(make_agent):
    with pytest.raises(SubmitError, match="disabled"):
        execution_submit(agent=make_agent("echo", enabled=False))


@override_settings(SYMPHONY_DEFAULT_MAX_ATTEMPTS=4, SYMPHONY_DEFAULT_TIMEOUT=33)
def test_site_defaults_apply_when_nothing_is_given(make_agent):
    execution = execution_submit(agent=make_agent("echo"))
    assert (execution.max_attempts, execution.timeout_seconds) == (4, 33)


def test_cancel_a_queued_execution(make_agent, admin_user):
    execution = execution_submit(agent=make_agent("echo"))
    execution = execution_cancel(execution=execution, by=admin_user)
    assert execution.state == S.CANCELLED
    assert execution.events.last().data["by"] == "admin"


def test_cancel_a_finished_execution_is_refused(make_agent, run):
    execution = run(execution_submit(agent=make_agent("echo")))
    with pytest.raises(InvalidTransition, match="is COMPLETED, not .*; from COMPLETED it can go to nothing"):
        execution_cancel(execution=execution)


def test_retry_starts_a_new_attempt_and_keeps_the_failed_one_in_history(make_agent, run):
    execution = run(execution_submit(agent=make_agent("boom"), max_attempts=1))
    failed_error = execution.error

    execution = execution_retry(execution=execution)

    assert execution.state == S.QUEUED
    assert (execution.attempt, execution.max_attempts) == (2, 2)
    assert execution.error is None and execution.progress == 0
    failed = execution.events.get(to_state=S.FAILED)
    assert failed.data["error"] == failed_error
    execution = run(execution)
    assert execution.state == S.FAILED and execution.error["attempt"] == 2


def test_retry_is_only_for_failed_executions(make_agent, run):
    execution = run(execution_submit(agent=make_agent("echo")))
    with pytest.raises(Exception, match="is COMPLETED, not FAILED"):
        execution_retry(execution=execution)


def test_cancel_after_a_claim_the_caller_did_not_see_still_cancels(make_agent):
    from executions.claims import claim

    execution = execution_submit(agent=make_agent("echo"))  # the page showed it QUEUED
    assert claim(owner="host:1:1").pk == execution.pk  # a worker took it meanwhile

    cancelled = execution_cancel(execution=execution)

    assert cancelled.state == S.CANCELLED
    assert cancelled.events.get(to_state=S.CANCELLED).from_state == S.PREPARING
