"""Concurrency groups: at most max_concurrent of a group's executions run at once, decided where work is claimed."""

import re
import threading

import pytest
from django.db import connection

from executions.claims import claim, has_ready_work
from executions.models import ConcurrencyGroup, Execution
from executions.models import ExecutionState as S
from executions.services import (
    SubmitError,
    concurrency_group_create,
    execution_cancel,
    execution_complete,
    execution_start,
    execution_submit,
)
from executions.wakeups import broker, waiting_wakeups
from executions.worker import drain

pytestmark = pytest.mark.django_db


def claimed_ids(count: int) -> list[int | None]:
    return [getattr(claim(owner="w"), "pk", None) for _ in range(count)]


def finish(execution: Execution) -> None:
    execution_start(execution_id=execution.pk, owner="w")
    execution_complete(execution_id=execution.pk, owner="w", result={})


def test_a_full_group_waits_although_its_agent_has_room(make_agent):
    agent = make_agent("echo", max_concurrency=10)
    group = concurrency_group_create(name="batch 1", max_concurrent=2)
    grouped = [execution_submit(agent=agent, concurrency_group=group) for _ in range(3)]

    assert claimed_ids(3) == [grouped[0].pk, grouped[1].pk, None]
    assert Execution.objects.get(pk=grouped[2].pk).state == S.QUEUED
    assert not has_ready_work()  # the dispatcher does not wake workers for it either


def test_a_full_group_does_not_hold_back_other_work(make_agent):
    agent = make_agent("echo")
    group = concurrency_group_create(name="batch 1", max_concurrent=1)
    grouped = [execution_submit(agent=agent, concurrency_group=group, priority=5) for _ in range(2)]
    other = execution_submit(agent=agent)

    assert claimed_ids(3) == [grouped[0].pk, other.pk, None]


def test_a_completed_execution_frees_its_groups_slot(make_agent):
    agent = make_agent("echo")
    group = concurrency_group_create(name="batch 1", max_concurrent=1)
    first, waiting = (execution_submit(agent=agent, concurrency_group=group) for _ in range(2))
    finish(claim(owner="w"))

    assert claim(owner="w").pk == waiting.pk
    assert Execution.objects.get(pk=first.pk).state == S.COMPLETED


def test_cancelling_a_running_grouped_execution_wakes_a_worker_that_starts_the_next(
    make_agent, django_capture_on_commit_callbacks
):
    agent = make_agent("echo")
    group = concurrency_group_create(name="batch 1", max_concurrent=1)
    running, waiting = (execution_submit(agent=agent, concurrency_group=group) for _ in range(2))
    claim(owner="other-worker")
    broker().purge_queue()

    with django_capture_on_commit_callbacks(execute=True):
        execution_cancel(execution=running)

    assert waiting_wakeups() == 1
    assert drain(budget=60).ran == 1
    waiting.refresh_from_db()
    assert waiting.state == S.COMPLETED


def test_both_the_agents_and_the_groups_limit_apply(make_agent):
    agent = make_agent("echo", max_concurrency=1)
    group = concurrency_group_create(name="batch 1", max_concurrent=3)
    grouped = [execution_submit(agent=agent, concurrency_group=group) for _ in range(2)]

    assert claimed_ids(2) == [grouped[0].pk, None]  # the group has room; the agent has not


def test_priority_orders_within_a_group(make_agent):
    agent = make_agent("echo")
    group = concurrency_group_create(name="batch 1", max_concurrent=1)
    low = execution_submit(agent=agent, concurrency_group=group, priority=1)
    high = execution_submit(agent=agent, concurrency_group=group, priority=9)

    finish(claim(owner="w"))

    assert claimed_ids(2) == [low.pk, None]
    assert Execution.objects.get(pk=high.pk).state == S.COMPLETED


def test_priority_orders_across_groups_and_ungrouped_work(make_agent):
    agent = make_agent("echo")
    first_group = concurrency_group_create(name="batch 1", max_concurrent=1)
    second_group = concurrency_group_create(name="batch 2", max_concurrent=1)
    first_low = execution_submit(agent=agent, concurrency_group=first_group, priority=1)
    first_high = execution_submit(agent=agent, concurrency_group=first_group, priority=5)
    second = execution_submit(agent=agent, concurrency_group=second_group, priority=3)
    ungrouped = execution_submit(agent=agent, priority=0)

    assert claimed_ids(4) == [first_high.pk, second.pk, ungrouped.pk, None]
    assert Execution.objects.get(pk=first_low.pk).state == S.QUEUED


def test_a_group_limit_of_zero_means_no_limit(make_agent):
    agent = make_agent("echo")
    group = concurrency_group_create(name="unlimited", max_concurrent=0)
    grouped = [execution_submit(agent=agent, concurrency_group=group) for _ in range(5)]

    assert claimed_ids(6) == [execution.pk for execution in grouped] + [None]


@pytest.mark.django_db(transaction=True)
def test_ten_workers_claiming_at_once_take_exactly_the_groups_limit(make_agent):
    agent = make_agent("echo")
    group = concurrency_group_create(name="batch 1", max_concurrent=3)
    for _ in range(10):
        execution_submit(agent=agent, concurrency_group=group)
    barrier = threading.Barrier(10)
    claimed, unexpected = [], []

    def race(worker: int):
        try:
            barrier.wait()
            execution = claim(owner=f"w{worker}")
            if execution is not None:
                claimed.append(execution.pk)
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            unexpected.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert unexpected == []
    assert len(claimed) == len(set(claimed)) == 3
    assert set(Execution.objects.filter(state=S.PREPARING).values_list("pk", flat=True)) == set(claimed)


def test_a_group_keeps_its_executions_and_its_name(make_agent):
    group = concurrency_group_create(name="  run 5 / step fetch ", max_concurrent=4)
    execution = execution_submit(agent=make_agent("echo"), concurrency_group=group)

    group.refresh_from_db()
    assert (group.name, group.max_concurrent, str(group)) == ("run 5 / step fetch", 4, "run 5 / step fetch")
    assert list(group.executions.all()) == [execution]


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"max_concurrent": -1}, "max_concurrent", "max_concurrent must be at least 0 and at most 10000 (got -1)"),
        ({"max_concurrent": 10_001}, "max_concurrent", "at most 10000 (got 10001)"),
        ({"max_concurrent": True}, "max_concurrent", "max_concurrent must be a whole number, not True"),
        ({"max_concurrent": 2.5}, "max_concurrent", "max_concurrent must be a whole number, not 2.5"),
        ({"max_concurrent": "3"}, "max_concurrent", "max_concurrent must be a whole number, not '3'"),
        ({"max_concurrent": None}, "max_concurrent", "max_concurrent must be a whole number, not None"),
        ({"max_concurrent": 3, "name": "x" * 201}, "name", "name may be at most 200 characters (got 201)"),
        ({"max_concurrent": 3, "name": 12}, "name", "name must be text, not int"),
    ],
)
def test_bad_groups_are_refused_naming_the_field_and_write_nothing(db, options, field, message):
    with pytest.raises(SubmitError, match=re.escape(message)) as refused:
        concurrency_group_create(**{"name": "batch", **options})

    assert refused.value.field == field
    assert not ConcurrencyGroup.objects.exists()
