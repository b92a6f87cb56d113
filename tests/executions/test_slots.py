"""A worker process runs many executions at once, each with its own lease, deadline and end."""

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from executions import shutdown
from executions.lease import Lease, renew_leases
from executions.models import Execution
from executions.models import ExecutionState as S
from executions.services import execution_cancel, execution_submit
from executions.slots import SlotPool
from executions.worker import drain
from tests import agents

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fresh_meeting():
    shutdown.stopping.clear()
    agents.meeting.update(started=0, running=0, peak=0)
    yield
    shutdown.stopping.clear()


def submit_many(agent, count, **input_data):
    return [execution_submit(agent=agent, input_data=input_data) for _ in range(count)]


@override_settings(SYMPHONY_SLOTS=30)
def test_async_agents_run_at_once_in_one_worker_process(make_agent):
    executions = submit_many(make_agent("async_meets_others"), 30, expected=30)

    assert drain(budget=60).ran == 30

    for execution in executions:
        execution.refresh_from_db()
        assert (execution.state, execution.result) == (S.COMPLETED, {"met": True})
    assert agents.meeting["peak"] == 30


@override_settings(SYMPHONY_SLOTS=10)
def test_sync_agents_run_at_once_in_threads_of_one_worker_process(make_agent):
    executions = submit_many(make_agent("meets_others"), 10, expected=10)

    drain(budget=60)

    assert {(e.state, str(e.result)) for e in Execution.objects.filter(pk__in=[e.pk for e in executions])} == {
        (S.COMPLETED, "{'met': True}")
    }


@override_settings(SYMPHONY_SLOTS=4)
def test_a_worker_never_runs_more_executions_than_its_slots(make_agent):
    submit_many(make_agent("async_meets_others"), 12, expected=4)

    assert drain(budget=60).ran == 12

    assert Execution.objects.filter(state=S.COMPLETED).count() == 12
    assert agents.meeting["peak"] == 4


def test_every_lease_is_renewed_in_one_statement_and_a_lost_one_says_so(make_agent):
    agent = make_agent("noop")
    executions = submit_many(agent, 3)
    pool = SlotPool(capacity=3)
    leases = []
    for execution, owner in zip(executions, pool.owners(), strict=False):
        Execution.objects.filter(pk=execution.pk).update(
            state=S.RUNNING, lease_owner=owner, lease_expires_at=timezone.now()
        )  # as a claim and start would leave it
        leases.append(Lease(execution.pk, owner, taken_at=0.0))
    execution_cancel(execution=Execution.objects.get(pk=executions[0].pk))

    with CaptureQueriesContext(connection) as queries:
        renewed = renew_leases(leases)

    assert renewed == {executions[1].pk, executions[2].pk}
    assert len([q for q in queries.captured_queries if q["sql"].startswith("UPDATE")]) == 1
    assert leases[0].renewed_at == 0.0 and leases[1].renewed_at > 0.0


@override_settings(SYMPHONY_CANCEL_GRACE_SECONDS=0.2, SYMPHONY_STOP_GRACE_SECONDS=0.5)
def test_an_agent_that_ignores_its_cancel_ends_the_worker_and_the_others_go_back_uncounted(make_agent):
    stuck = execution_submit(agent=make_agent("hangs"), input_data={"seconds": 3}, timeout=0.3)
    polite = submit_many(make_agent("sleeps_politely"), 2, tick=0.2)
    pool = SlotPool(capacity=5)

    pool.drain(budget=60)

    stuck.refresh_from_db()
    assert stuck.state == S.TIMED_OUT
    assert pool.recycle_reason and f"execution {stuck.pk}" in pool.recycle_reason
    for execution in polite:
        execution.refresh_from_db()
        assert (execution.state, execution.attempt) == (S.QUEUED, 1)
        assert execution.events.filter(to_state=S.QUEUED, data__reason="requeued: worker stopping").exists()


@override_settings(SYMPHONY_PROGRESS_FLUSH_SECONDS=60)
def test_the_first_streamed_output_is_written_at_once_not_at_the_next_tick(make_agent):
    execution = execution_submit(agent=make_agent("streams_then_waits_for_the_write"))

    drain(budget=60)

    execution.refresh_from_db()
    assert execution.result == {"written_while_running": True}
    assert execution.events.get(kind="output").data == {"text": "first"}
