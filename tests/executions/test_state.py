import threading

import pytest
from django.db import connection

from executions.models import EventKind, Execution, ExecutionEvent
from executions.models import ExecutionState as S
from executions.services import execution_submit
from executions.state import (
    ALLOWED_TRANSITIONS,
    FINISHED,
    TERMINAL,
    InvalidTransition,
    TransitionConflict,
    transition,
)

ALL_PAIRS = [(a, b) for a in S.values for b in S.values]
ALLOWED_PAIRS = [(a, b) for a, b in ALL_PAIRS if b in ALLOWED_TRANSITIONS[a]]
REFUSED_PAIRS = [(a, b) for a, b in ALL_PAIRS if b not in ALLOWED_TRANSITIONS[a]]


@pytest.fixture
def execution(demo_agents):
    return execution_submit(agent=demo_agents["slow"], input_data={}, hold=True)


def force_state(execution, state):
    """Put a test execution in a given state without the state machine (setup only)."""
    Execution.objects.filter(pk=execution.pk).update(state=state)


def test_the_table_covers_every_state():
    assert set(ALLOWED_TRANSITIONS) == set(S.values)


def test_cancelled_timed_out_and_completed_are_terminal():
    assert TERMINAL == {S.COMPLETED, S.CANCELLED, S.TIMED_OUT}
    assert FINISHED == TERMINAL | {S.FAILED}


@pytest.mark.parametrize(("from_state", "to_state"), ALLOWED_PAIRS)
def test_allowed_transition_changes_state_and_writes_one_event(execution, from_state, to_state):
    force_state(execution, from_state)
    before = execution.events.count()

    event = transition(execution.pk, to_state, expected=[from_state], data={"reason": "test"})

    execution.refresh_from_db()
    assert execution.state == to_state
    assert execution.events.count() == before + 1
    assert (event.kind, event.from_state, event.to_state) == (EventKind.STATE, from_state, to_state)
    assert event.data == {"reason": "test"}
    assert (execution.finished_at is not None) == (to_state in FINISHED)


@pytest.mark.parametrize(("from_state", "to_state"), REFUSED_PAIRS)
def test_refused_transition_raises_a_clear_error_and_writes_nothing(execution, from_state, to_state):
    force_state(execution, from_state)
    before = execution.events.count()

    with pytest.raises(InvalidTransition) as raised:
        transition(execution.pk, to_state, expected=[from_state])

    assert f"cannot go from {from_state} to {to_state}" in str(raised.value)
    execution.refresh_from_db()
    assert execution.state == from_state
    assert execution.events.count() == before


def test_expected_state_mismatch_is_a_conflict(execution):
    force_state(execution, S.RUNNING)
    with pytest.raises(TransitionConflict, match="another actor got there first"):
        transition(execution.pk, S.CANCELLED, expected=[S.QUEUED])


def test_a_move_the_actual_state_never_allows_is_invalid_not_a_race(execution):
    force_state(execution, S.CANCELLED)
    with pytest.raises(
        InvalidTransition, match="is CANCELLED, not PREPARING; from CANCELLED it can go to nothing \\(it is final\\)"
    ):
        transition(execution.pk, S.RUNNING, expected=[S.PREPARING])


def test_expected_is_required():
    with pytest.raises(TypeError):
        transition(1, S.RUNNING)
    with pytest.raises(ValueError, match="expected"):
        transition(1, S.RUNNING, expected=[])


def test_fields_are_written_with_the_transition(execution):
    transition(execution.pk, S.QUEUED, expected=[execution.state], fields={"current_step": "ready"})
    execution.refresh_from_db()
    assert execution.current_step == "ready"


def test_saving_an_execution_with_a_changed_state_is_refused_loudly(execution):
    execution.state = S.COMPLETED
    execution.current_step = "edited"
    with pytest.raises(ValueError, match="transition"):
        execution.save()

    execution.refresh_from_db()
    assert execution.state == S.PENDING
    assert execution.current_step == ""


def test_saving_other_fields_leaves_the_state_alone(execution):
    execution.current_step = "edited"
    execution.save()
    execution.refresh_from_db()
    assert (execution.state, execution.current_step) == (S.PENDING, "edited")


def test_saving_state_explicitly_is_refused(execution):
    execution.state = S.COMPLETED
    with pytest.raises(ValueError, match="transition"):
        execution.save(update_fields=["state"])


@pytest.mark.django_db(transaction=True)
def test_twenty_threads_racing_one_transition_exactly_one_wins(demo_agents):
    execution = execution_submit(agent=demo_agents["slow"], input_data={}, hold=True)
    force_state(execution, S.QUEUED)
    barrier = threading.Barrier(20)
    wins, losses, unexpected = [], [], []

    def race(worker: int):
        try:
            barrier.wait()
            transition(execution.pk, S.PREPARING, expected=[S.QUEUED], fields={"lease_owner": f"w{worker}"})
            wins.append(worker)
        except (TransitionConflict, InvalidTransition):
            losses.append(worker)
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            unexpected.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert unexpected == []
    assert len(wins) == 1 and len(losses) == 19
    execution.refresh_from_db()
    assert execution.state == S.PREPARING
    assert execution.lease_owner == f"w{wins[0]}"
    assert ExecutionEvent.objects.filter(execution=execution, to_state=S.PREPARING).count() == 1
