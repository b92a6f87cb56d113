"""The runner against faults: unstorable text, database errors, a worker asked to stop."""

import time

import pytest
from django.db import OperationalError
from django.test import override_settings

from executions import shutdown
from executions.lease import DatabaseUnavailable, Lease, with_reconnect
from executions.models import EventKind
from executions.models import ExecutionState as S
from executions.services import execution_submit
from executions.worker import drain

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_stop_request():
    shutdown.stopping.clear()
    yield
    shutdown.stopping.clear()


def test_text_no_database_can_hold_is_replaced_where_it_enters(make_agent, run):
    execution = run(execution_submit(agent=make_agent("writes_unstorable_text")))

    assert execution.state == S.COMPLETED
    assert execution.result == {"text": "result \ufffd with \ufffd lone half", "ok\ufffd": 1}
    assert execution.steps == ["step \ufffd one \ufffd"]
    logs = [line for e in execution.events.filter(kind=EventKind.LOG) for line in e.data["lines"]]
    assert "nul \ufffd and surrogate \ufffd" in logs
    assert any("replaced" in line and "U+FFFD" in line for line in logs)
    assert execution.events.get(kind=EventKind.OUTPUT).data["text"] == "token\ufffd"


def test_a_database_call_is_retried_until_the_database_answers():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise OperationalError("server closed the connection unexpectedly")
        return "answered"

    assert with_reconnect(flaky, until=time.monotonic() + 30, what="test") == "answered"
    assert len(calls) == 3


def test_a_database_that_stays_away_past_the_deadline_is_reported():
    def down():
        raise OperationalError("connection refused")

    with pytest.raises(DatabaseUnavailable, match="could not test: the database did not answer"):
        with_reconnect(down, until=time.monotonic() + 0.3, what="test")


@override_settings(SYMPHONY_LEASE_SECONDS=20, SYMPHONY_CANCEL_GRACE_SECONDS=4)
def test_the_agent_must_stop_before_the_lease_can_pass():
    lease = Lease(1, "me", taken_at=100.0)
    assert lease.expires == 120.0
    # cancel allowance (4 s, within a quarter of the lease) plus a 10% margin before the end
    assert lease.stop_by == pytest.approx(114.0) and lease.safe_until == pytest.approx(118.0)


def test_a_renewal_of_a_lease_that_is_no_longer_ours_says_so(make_agent, run):
    execution = run(execution_submit(agent=make_agent("echo")))
    assert Lease(execution.pk, "someone", taken_at=time.monotonic()).renew() is False


@override_settings(SYMPHONY_STOP_GRACE_SECONDS=0.2)
def test_a_stopping_worker_puts_its_execution_back_without_counting_the_attempt(make_agent, run):
    execution = run(execution_submit(agent=make_agent("stops_its_worker"), max_attempts=1))

    assert execution.state == S.QUEUED
    assert (execution.attempt, execution.max_attempts) == (1, 1)
    back = execution.events.get(from_state=S.RUNNING, to_state=S.QUEUED)
    assert back.data["reason"] == "requeued: worker stopping"
    assert execution.lease_owner == "" and execution.result is None


@override_settings(SYMPHONY_STOP_GRACE_SECONDS=30)
def test_an_execution_that_ends_within_the_grace_period_is_recorded(make_agent, run):
    execution = run(execution_submit(agent=make_agent("finishes_within_grace")))
    assert (execution.state, execution.result) == (S.COMPLETED, {"finished": True})


def test_a_stopping_worker_claims_nothing(make_agent):
    execution = execution_submit(agent=make_agent("echo"))
    shutdown.request_stop()

    assert drain().ran == 0
    execution.refresh_from_db()
    assert execution.state == S.QUEUED


@override_settings(SYMPHONY_STOP_GRACE_SECONDS=0.1, SYMPHONY_CANCEL_GRACE_SECONDS=30)
def test_a_stopping_worker_waits_at_most_two_seconds_for_an_agent_that_ignores_the_cancel(make_agent, run):
    from executions.shutdown import STOP_CANCEL_SECONDS, stop_cancel_grace

    assert stop_cancel_grace() == STOP_CANCEL_SECONDS == 2.0
    execution = execution_submit(agent=make_agent("stops_and_ignores_cancel"), max_attempts=1)
    execution = run(execution)

    # Still running: the runner gave up on it well before its 6 s sleep, let alone the 30 s
    # cancel grace, and the worker ends its process to stop it.
    assert execution.outcome.agent_left_running
    assert (execution.state, execution.attempt) == (S.QUEUED, 1)
    assert execution.not_before is not None  # not claimable before this process has ended
