import pytest
from django.utils import timezone

from executions.claims import claim
from executions.models import Execution
from executions.models import ExecutionState as S
from executions.services import execution_cancel, execution_submit
from executions.worker import drain

pytestmark = pytest.mark.django_db


def test_the_most_urgent_ready_execution_is_claimed_first(make_agent):
    agent = make_agent("echo")
    first = execution_submit(agent=agent)
    urgent = execution_submit(agent=agent, priority=5)
    second = execution_submit(agent=agent)

    order = [claim(owner="w").pk for _ in range(3)]

    assert order == [urgent.pk, first.pk, second.pk]
    assert claim(owner="w") is None


def test_a_claim_moves_the_execution_to_preparing_under_a_lease(make_agent):
    execution = execution_submit(agent=make_agent("echo"))

    claimed = claim(owner="host:1:2")

    execution.refresh_from_db()
    assert (claimed.pk, execution.state, execution.lease_owner) == (execution.pk, S.PREPARING, "host:1:2")
    assert execution.lease_expires_at > timezone.now()
    assert execution.events.last().data == {"worker": "host:1:2"}


def test_an_execution_not_yet_due_is_not_claimed(make_agent):
    execution = execution_submit(agent=make_agent("echo"))
    Execution.objects.filter(pk=execution.pk).update(not_before=timezone.now() + timezone.timedelta(minutes=1))
    assert claim(owner="w") is None


def test_an_agent_at_its_concurrency_limit_waits_while_others_run(make_agent):
    limited = make_agent("echo", name="limited", max_concurrency=2)
    free = make_agent("noop", name="free")
    limited_runs = [execution_submit(agent=limited, priority=1) for _ in range(3)]
    other = execution_submit(agent=free)

    claimed = [claim(owner="w") for _ in range(4)]

    assert [c.pk for c in claimed[:3]] == [limited_runs[0].pk, limited_runs[1].pk, other.pk]
    assert claimed[3] is None  # the third of `limited` waits for a slot
    assert Execution.objects.get(pk=limited_runs[2].pk).state == S.QUEUED


def test_a_freed_slot_lets_the_waiting_execution_start(make_agent):
    limited = make_agent("echo", name="limited", max_concurrency=1)
    running = execution_submit(agent=limited)
    waiting = execution_submit(agent=limited)
    claim(owner="w")
    assert claim(owner="w") is None

    execution_cancel(execution=running)

    assert claim(owner="w").pk == waiting.pk


def test_a_woken_worker_drains_everything_ready(make_agent):
    agent = make_agent("echo")
    executions = [execution_submit(agent=agent, input_data={"n": n}) for n in range(5)]

    result = drain(budget=60)

    assert result.ran == 5 and not result.budget_spent
    for execution in executions:
        execution.refresh_from_db()
        assert execution.state == S.COMPLETED


def test_a_drain_past_its_budget_stops_claiming(make_agent):
    agent = make_agent("echo")
    for _ in range(3):
        execution_submit(agent=agent)

    result = drain(budget=0)

    assert (result.ran, result.budget_spent) == (0, True)
    assert Execution.objects.filter(state=S.QUEUED).count() == 3
