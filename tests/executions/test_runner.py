import threading
import time

import pytest
from django.db import connection
from django.test import override_settings

from executions.models import EventKind, Execution
from executions.models import ExecutionState as S
from executions.services import execution_cancel, execution_submit

pytestmark = pytest.mark.django_db


def submit(agent, input_data=None, **options):
    return execution_submit(agent=agent, input_data=input_data or {}, **options)


def state_path(execution):
    return [e.to_state for e in execution.events.filter(kind=EventKind.STATE)]


def test_success_records_result_and_completes(make_agent, run):
    execution = run(submit(make_agent("echo"), {"question": 42}))

    assert execution.state == S.COMPLETED
    assert execution.result == {"echo": {"question": 42}, "attempt": 1}
    assert execution.progress == 100
    assert execution.error is None
    assert execution.lease_owner == "" and execution.started_at and execution.finished_at
    assert state_path(execution) == [S.QUEUED, S.PREPARING, S.RUNNING, S.COMPLETED]


def test_a_class_agent_is_built_with_its_config(make_agent, run):
    agent = make_agent("Greeter", name="greeter")
    agent.settings["greeting"] = "hi"
    agent.save()
    assert run(submit(agent, {"name": "Ada"})).result == "hi, Ada"


def test_async_agent_runs_and_reports_progress(make_agent, run):
    execution = run(submit(make_agent("async_echo"), {"x": 1}))
    assert execution.state == S.COMPLETED
    assert execution.result == {"echo": {"x": 1}}
    assert execution.steps == ["halfway"]


def test_failure_records_type_message_traceback_attempt_and_agent(make_agent, run):
    execution = run(submit(make_agent("boom"), max_attempts=1))

    assert execution.state == S.FAILED
    error = execution.error
    assert error["type"] == "RuntimeError"
    assert error["message"] == "the agent broke"
    assert "tests/agents.py" in error["traceback"] and "raise RuntimeError" in error["traceback"]
    assert (error["attempt"], error["agent"]) == (1, "boom")
    assert execution.result is None


def test_a_transient_failure_with_attempts_left_is_retried_as_a_new_attempt(make_agent, run):
    execution = run(submit(make_agent("drops_connection"), max_attempts=2))
    assert execution.state == S.QUEUED
    assert execution.attempt == 2

    execution = run(execution)

    assert execution.state == S.FAILED
    assert execution.error["attempt"] == 2
    requeued = execution.events.get(from_state=S.RUNNING, to_state=S.QUEUED)
    assert requeued.data["error"]["attempt"] == 1 and requeued.data["attempt"] == 2
    assert state_path(execution).count(S.FAILED) == 1


def test_flaky_demo_agent_succeeds_on_its_third_attempt(demo_agents, run):
    execution = submit(demo_agents["flaky"], {"fail_attempts": 2}, max_attempts=3)
    for _ in range(3):
        execution = run(execution)
    assert execution.state == S.COMPLETED
    assert execution.result == {"succeeded_on_attempt": 3}


def test_an_error_marked_not_retryable_fails_at_once(make_agent, run):
    execution = run(submit(make_agent("not_retryable"), max_attempts=5))
    assert execution.state == S.FAILED
    assert execution.error["retryable"] is False


def test_an_agent_calling_exit_fails_without_harming_the_worker(make_agent, run):
    execution = run(submit(make_agent("exits"), max_attempts=1))
    assert execution.state == S.FAILED
    assert execution.error["type"] == "SystemExit"


def test_an_unimportable_agent_fails_while_preparing(run, db):
    from routing.models import AgentConfig

    agent = AgentConfig.objects.create(name="ghost", settings={"path": "tests.agents.does_not_exist"})
    execution = run(submit(agent, max_attempts=3))

    assert execution.state == S.FAILED
    assert execution.error["type"] == "routing.factory.AgentBuildError"
    assert "has no 'does_not_exist'" in execution.error["message"]
    assert state_path(execution) == [S.QUEUED, S.PREPARING, S.FAILED]


@pytest.mark.parametrize(
    ("agent", "message"),
    [
        ("returns_set", "not JSON-serialisable"),
        ("returns_nan", "not JSON-serialisable"),
        ("returns_huge", "over the 1,000,000-byte limit"),
    ],
)
def test_junk_output_fails_with_a_clear_reason_and_is_not_retried(make_agent, run, agent, message):
    execution = run(submit(make_agent(agent), max_attempts=3))
    assert execution.state == S.FAILED
    assert execution.error["type"] == "executions.runner.InvalidResult"
    assert message in execution.error["message"]
    assert execution.result is None


def test_invalid_progress_from_an_agent_fails_it(make_agent, run):
    execution = run(submit(make_agent("bad_progress"), max_attempts=1))
    assert execution.state == S.FAILED
    assert "finite number" in execution.error["message"]


def test_a_polite_agent_past_its_deadline_times_out_and_stops(make_agent, run):
    execution = run(submit(make_agent("sleeps_politely"), {"tick": 0.05}, timeout=0.3))
    assert execution.state == S.TIMED_OUT
    assert execution.error["type"] == "TimedOut"
    assert execution.outcome.agent_left_running is False


def test_an_async_agent_past_its_deadline_is_cancelled(make_agent, run):
    execution = run(submit(make_agent("async_sleeps"), {"seconds": 30}, timeout=0.3))
    assert execution.state == S.TIMED_OUT
    assert execution.outcome.agent_left_running is False
    assert execution.events.filter(kind=EventKind.LOG, data__lines=["cancelled politely"]).exists()


@override_settings(SYMPHONY_CANCEL_GRACE_SECONDS=0.2)
def test_a_hanging_agent_times_out_and_is_reported_as_left_running(make_agent, run):
    started = time.monotonic()
    execution = run(submit(make_agent("hangs"), {"seconds": 2}, timeout=0.3))
    assert execution.state == S.TIMED_OUT
    assert execution.outcome.agent_left_running is True
    assert time.monotonic() - started < 2, "the runner waited for the hung agent"


def test_cancelled_while_queued_never_runs(make_agent, run):
    execution = submit(make_agent("echo"))
    execution_cancel(execution=execution)

    execution = run(execution)

    assert execution.state == S.CANCELLED
    assert execution.outcome.state is None
    assert state_path(execution) == [S.QUEUED, S.CANCELLED]


def test_a_second_delivery_of_the_same_execution_does_nothing(make_agent, run):
    execution = run(submit(make_agent("echo")))
    events = execution.events.count()

    execution = run(execution)

    assert execution.outcome.state is None
    assert execution.events.count() == events


def test_an_execution_not_yet_due_is_left_for_the_dispatcher(make_agent, run):
    from django.utils import timezone

    execution = submit(make_agent("echo"))
    Execution.objects.filter(pk=execution.pk).update(not_before=timezone.now() + timezone.timedelta(hours=1))
    assert run(execution).state == S.QUEUED


def test_chatty_progress_is_coalesced_and_loses_no_step_or_line(make_agent, run):
    execution = run(submit(make_agent("chatty"), {"count": 5000}))

    assert execution.state == S.COMPLETED
    assert execution.steps == [f"phase {n}" for n in range(5)]
    writes = execution.events.exclude(kind=EventKind.STATE).count()
    assert writes < 60, f"{writes} progress/log rows for 10,000 reports"
    lines = [line for event in execution.events.filter(kind=EventKind.LOG) for line in event.data["lines"]]
    assert lines == [f"line {n}" for n in range(5000)]


def test_events_are_in_id_order_with_increasing_ids(make_agent, run):
    execution = run(submit(make_agent("chatty"), {"count": 300}))
    ids = list(execution.events.values_list("id", flat=True))
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    kinds = [e.kind for e in execution.events.all()]
    assert kinds[0] == kinds[-1] == EventKind.STATE


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_running_execution_stops_the_agent_and_ends_once(make_agent):
    from executions.runner import ExecutionRunner

    execution = submit(make_agent("sleeps_politely"), {"tick": 0.05})
    outcome = {}

    def work():
        outcome["run"] = ExecutionRunner(execution.pk).run()
        connection.close()

    worker = threading.Thread(target=work)
    worker.start()
    deadline = time.monotonic() + 10
    while Execution.objects.get(pk=execution.pk).state != S.RUNNING:
        assert time.monotonic() < deadline, "never started running"
        time.sleep(0.02)

    execution_cancel(execution=execution)
    worker.join(10)

    assert not worker.is_alive()
    execution.refresh_from_db()
    assert execution.state == S.CANCELLED
    assert execution.result is None
    assert outcome["run"].state is None and outcome["run"].agent_left_running is False
    assert state_path(execution) == [S.QUEUED, S.PREPARING, S.RUNNING, S.CANCELLED]
