"""Attempts told from state events: the timeline on the execution page and the log split by attempt."""

from datetime import UTC, datetime, timedelta

from executions.attempts import attempts_from, duration_text, split_log
from executions.models import EventKind, ExecutionEvent
from executions.models import ExecutionState as S

T0 = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)


def history(*moves: tuple) -> list[ExecutionEvent]:
    """State events from (seconds after T0, from state, to state[, data]), ids 10, 20, 30..."""
    events = []
    for number, (seconds, from_state, to_state, *data) in enumerate(moves, start=1):
        events.append(
            ExecutionEvent(
                pk=number * 10,
                kind=EventKind.STATE,
                from_state=from_state,
                to_state=to_state,
                data=data[0] if data else {},
                created_at=T0 + timedelta(seconds=seconds),
            )
        )
    return events


def log(pk: int) -> ExecutionEvent:
    return ExecutionEvent(pk=pk, kind=EventKind.LOG, data={"lines": [f"line {pk}"]}, created_at=T0)


def test_one_run_is_one_attempt_with_its_wait_and_run():
    (attempt,) = attempts_from(
        history(
            (0, "", S.QUEUED), (2, S.QUEUED, S.PREPARING), (2.5, S.PREPARING, S.RUNNING), (7, S.RUNNING, S.COMPLETED)
        )
    )

    assert (attempt.number, attempt.start_id, attempt.outcome) == (1, 10, S.COMPLETED)
    assert attempt.waited == timedelta(seconds=2)
    assert attempt.ran == timedelta(seconds=5)  # from the claim: preparing is part of the run
    assert attempt.took == timedelta(seconds=7)
    assert not attempt.is_open


def test_a_retry_with_backoff_and_a_retry_by_hand_each_start_an_attempt():
    attempts = attempts_from(
        history(
            (0, "", S.QUEUED),
            (1, S.QUEUED, S.PREPARING),
            (1, S.PREPARING, S.RUNNING),
            (
                3,
                S.RUNNING,
                S.QUEUED,
                {
                    "reason": "attempt 1 failed; retrying in 2s",
                    "attempt": 2,
                    "error": {"type": "RuntimeError", "message": "flaky"},
                },
            ),  # fmt: skip
            (5, S.QUEUED, S.PREPARING),
            (5, S.PREPARING, S.RUNNING),
            (6, S.RUNNING, S.FAILED, {"reason": "attempt 2 failed; no attempts left"}),
            (60, S.FAILED, S.QUEUED, {"reason": "retried by alice", "attempt": 3}),
            (61, S.QUEUED, S.PREPARING),
            (61, S.PREPARING, S.RUNNING),
            (70, S.RUNNING, S.COMPLETED),
        )
    )

    assert [(a.number, a.start_id, a.outcome) for a in attempts] == [
        (1, 10, S.QUEUED),
        (2, 40, S.FAILED),
        (3, 80, S.COMPLETED),
    ]
    first, second, third = attempts
    assert (first.reason, first.error) == ("attempt 1 failed; retrying in 2s", "RuntimeError: flaky")
    assert (first.ran, first.took) == (timedelta(seconds=2), timedelta(seconds=3))
    assert second.waited == timedelta(seconds=2)  # the backoff is time spent waiting
    assert second.reason == "attempt 2 failed; no attempts left"
    assert (third.waited, third.ran) == (timedelta(seconds=1), timedelta(seconds=9))
    # Every event belongs to exactly one attempt, and the attempts cover the history in order.
    assert [e.pk for a in attempts for e in a.events] == list(range(10, 120, 10))


def test_a_held_or_paused_run_waits_on_in_the_same_attempt():
    attempts = attempts_from(
        history(
            (0, "", S.PENDING),
            (4, S.PENDING, S.QUEUED, {"reason": "released"}),
            (5, S.QUEUED, S.PAUSED),
            (9, S.PAUSED, S.QUEUED),
            (10, S.QUEUED, S.CANCELLED),
        )
    )

    (attempt,) = attempts
    assert attempt.queued_at == T0 + timedelta(seconds=4)
    assert attempt.started_at is None and attempt.ran is None
    assert attempt.waited == timedelta(seconds=6)  # from entering the queue to the end: never claimed
    assert attempt.outcome == S.CANCELLED


def test_an_attempt_under_way_counts_to_now_and_says_so():
    now = T0 + timedelta(seconds=30)
    (attempt,) = attempts_from(history((0, "", S.QUEUED), (10, S.QUEUED, S.PREPARING)), now=now)

    assert attempt.is_open and attempt.outcome == ""
    assert (attempt.waited, attempt.ran, attempt.took) == (
        timedelta(seconds=10),
        timedelta(seconds=20),
        timedelta(seconds=30),
    )
    assert attempt.waited_text == "10.0 s"  # the wait is over
    assert attempt.ran_text == "20.0 s so far"


def test_a_requeue_after_a_lost_worker_keeps_the_attempt_number_the_event_gives():
    attempts = attempts_from(
        history(
            (0, "", S.QUEUED),
            (1, S.QUEUED, S.PREPARING),
            (2, S.PREPARING, S.QUEUED, {"reason": "worker stopped", "attempt": 1}),
            (3, S.QUEUED, S.PREPARING),
        )
    )

    assert [(a.number, a.outcome) for a in attempts] == [(1, S.QUEUED), (1, "")]


def test_log_events_go_to_the_attempt_under_way_when_they_were_written():
    attempts = attempts_from(
        history((0, "", S.QUEUED), (1, S.QUEUED, S.PREPARING), (3, S.PREPARING, S.QUEUED), (4, S.QUEUED, S.PREPARING))
    )

    groups = split_log(attempts, [log(15), log(25), log(31), log(45)])

    assert {start: [e.pk for e in events] for start, events in groups.items()} == {10: [15, 25], 30: [31, 45]}


def test_durations_read_short():
    assert duration_text(None) == "—"
    assert duration_text(timedelta(seconds=1.234)) == "1.23 s"
    assert duration_text(timedelta(seconds=42.25)) == "42.2 s"
    assert duration_text(timedelta(minutes=3, seconds=4)) == "3 min 04 s"
    assert duration_text(timedelta(hours=2, minutes=5)) == "2 h 05 min"
    assert duration_text(timedelta(days=3, hours=1)) == "3 d 01 h"
    assert duration_text(timedelta(seconds=-1)) == "0.00 s"  # clocks of two machines
