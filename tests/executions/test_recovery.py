import pytest
from django.utils import timezone

from executions.models import Execution
from executions.models import ExecutionState as S
from executions.recovery import reap_expired_leases, wake_for_waiting_work
from executions.services import execution_submit
from executions.state import transition
from executions.wakeups import broker, waiting_wakeups

pytestmark = pytest.mark.django_db


def running_with_lease(agent, *, expired: bool, attempt=1, max_attempts=3):
    execution = execution_submit(agent=agent, max_attempts=max_attempts)
    lease = timezone.now() + timezone.timedelta(seconds=-5 if expired else 60)
    transition(
        execution.pk, S.PREPARING, expected=[S.QUEUED], fields={"lease_owner": "host:1:1", "lease_expires_at": lease}
    )
    transition(execution.pk, S.RUNNING, expected=[S.PREPARING], fields={"attempt": attempt})
    return execution


def test_an_expired_lease_is_requeued_as_a_new_attempt(make_agent):
    execution = running_with_lease(make_agent("echo"), expired=True)

    assert reap_expired_leases() == 1

    execution.refresh_from_db()
    assert execution.state == S.QUEUED
    assert execution.attempt == 2
    assert execution.lease_owner == "" and execution.queued_at is not None
    event = execution.events.last()
    assert (event.from_state, event.to_state) == (S.RUNNING, S.QUEUED)
    assert event.data["error"]["type"] == "WorkerLost" and "host:1:1" in event.data["error"]["message"]


def test_an_expired_lease_with_no_attempts_left_fails(make_agent):
    execution = running_with_lease(make_agent("echo"), expired=True, attempt=3, max_attempts=3)

    reap_expired_leases()

    execution.refresh_from_db()
    assert execution.state == S.FAILED
    assert execution.error["type"] == "WorkerLost"


def test_a_live_lease_is_left_alone(make_agent):
    execution = running_with_lease(make_agent("echo"), expired=False)
    assert reap_expired_leases() == 0
    execution.refresh_from_db()
    assert execution.state == S.RUNNING


def test_reaping_twice_ends_nothing_twice(make_agent):
    execution = running_with_lease(make_agent("echo"), expired=True, attempt=3, max_attempts=3)
    reap_expired_leases()
    reap_expired_leases()
    assert execution.events.filter(to_state=S.FAILED).count() == 1


def test_work_left_waiting_gets_one_worker_woken(make_agent):
    agent = make_agent("echo")
    waiting = execution_submit(agent=agent)
    broker().purge_queue()  # the wake-up was lost (say, with a crashed worker)
    Execution.objects.filter(pk=waiting.pk).update(queued_at=timezone.now() - timezone.timedelta(seconds=5))

    assert wake_for_waiting_work() is True
    assert waiting_wakeups() == 1
    assert wake_for_waiting_work() is False  # one is waiting already: enough
    assert waiting_wakeups() == 1


def test_a_retry_not_yet_due_wakes_nobody(make_agent):
    later = execution_submit(agent=make_agent("echo"))
    broker().purge_queue()
    Execution.objects.filter(pk=later.pk).update(not_before=timezone.now() + timezone.timedelta(hours=1))

    assert wake_for_waiting_work() is False
    assert waiting_wakeups() == 0
