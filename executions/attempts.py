"""An execution's attempts, told from its state events: when each was queued, how long it waited,
how long it ran and how it ended; and which attempt each log event belongs to.

The state events are the history the page reads anyway (one query, ``selectors.execution_history``);
nothing here reads the database. An attempt starts at the submit and again at every move back to
QUEUED from a failure or from a run that did not finish (a retry, a retry with backoff, a requeue
after a lost worker). Leaving PENDING or PAUSED for QUEUED is the same attempt waiting on.
"""

import bisect
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from executions.models import ExecutionEvent
from executions.models import ExecutionState as S
from executions.state import ACTIVE, FINISHED

# Moves into QUEUED from these states start a new attempt.
AGAIN_FROM = ACTIVE | {S.FAILED}


@dataclass
class Attempt:
    number: int  # the execution's own attempt number where the event says it, else the count so far
    start_id: int  # the id of the state event that started it: DOM ids and log assignment hang on it
    created_at: datetime
    queued_at: datetime | None = None
    started_at: datetime | None = None  # claimed by a worker (PREPARING)
    ended_at: datetime | None = None
    outcome: str = ""  # the state it ended in; QUEUED when it was put back in the queue
    reason: str = ""  # why it ended, as its event says
    error: str = ""  # the error it ended with, as "Type: message"
    events: list[ExecutionEvent] = field(default_factory=list)
    now: datetime | None = None  # when it was read: durations of an unfinished attempt run to here

    @property
    def is_open(self) -> bool:
        return self.ended_at is None

    def _until(self, moment: datetime | None) -> datetime | None:
        return moment or self.ended_at or self.now

    @property
    def waited(self) -> timedelta | None:
        """From entering the queue to being claimed (or to its end, or to now, if never claimed)."""
        begin = self.queued_at or self.created_at
        end = self._until(self.started_at)
        return end - begin if end else None

    @property
    def ran(self) -> timedelta | None:
        if self.started_at is None:
            return None
        end = self._until(None)
        return end - self.started_at if end else None

    @property
    def took(self) -> timedelta | None:
        end = self._until(None)
        return end - self.created_at if end else None

    # For templates, which cannot call ``duration_text``; an unfinished attempt's figures say "so far".
    @property
    def waited_text(self) -> str:
        return self._text(self.waited, open_=self.started_at is None)

    @property
    def ran_text(self) -> str:
        return self._text(self.ran, open_=True)

    @property
    def took_text(self) -> str:
        return self._text(self.took, open_=True)

    def _text(self, duration: timedelta | None, *, open_: bool) -> str:
        text = duration_text(duration)
        return f"{text} so far" if open_ and self.is_open and duration is not None else text


def _starts_attempt(event: ExecutionEvent) -> bool:
    return not event.from_state or (event.to_state == S.QUEUED and event.from_state in AGAIN_FROM)


def attempts_from(history: list[ExecutionEvent], *, now: datetime | None = None) -> list[Attempt]:
    """The attempts in ``history`` (state events, oldest first), oldest first."""
    attempts: list[Attempt] = []
    for event in history:
        data = event.data if isinstance(event.data, dict) else {}
        if not attempts or _starts_attempt(event):
            if attempts and attempts[-1].is_open:
                _end(attempts[-1], event, data)
            number = data.get("attempt")
            if not isinstance(number, int) or isinstance(number, bool):
                number = len(attempts) + 1
            attempts.append(Attempt(number=number, start_id=event.pk, created_at=event.created_at, now=now))
        attempt = attempts[-1]
        attempt.events.append(event)
        if event.to_state == S.QUEUED and attempt.queued_at is None:
            attempt.queued_at = event.created_at
        elif event.to_state == S.PREPARING and attempt.started_at is None:
            attempt.started_at = event.created_at
        elif event.to_state == S.RUNNING and attempt.started_at is None:
            attempt.started_at = event.created_at
        if event.to_state in FINISHED:
            _end(attempt, event, data)
    return attempts


def _end(attempt: Attempt, event: ExecutionEvent, data: dict) -> None:
    attempt.ended_at, attempt.outcome = event.created_at, event.to_state
    attempt.reason = str(data.get("reason") or "")
    error = data.get("error")
    if isinstance(error, dict):
        kind, message = str(error.get("type") or ""), str(error.get("message") or "")
        attempt.error = f"{kind}: {message}" if kind and message else kind or message
    elif error:
        attempt.error = str(error)


def split_log(attempts: list[Attempt], log_events: list[ExecutionEvent]) -> dict[int, list[ExecutionEvent]]:
    """``log_events`` (oldest first) by the attempt under way when each was written (the last one
    started before it), keyed by the attempt's ``start_id``."""
    starts = [attempt.start_id for attempt in attempts]
    groups: dict[int, list[ExecutionEvent]] = {}
    for event in log_events:
        index = bisect.bisect_right(starts, event.pk) - 1
        if index >= 0:
            groups.setdefault(starts[index], []).append(event)
    return groups


def duration_text(duration: timedelta | None) -> str:
    """``1.25 s``, ``3 min 04 s``, ``2 h 05 min``: short, and exact enough to compare attempts."""
    if duration is None:
        return "—"
    seconds = max(duration.total_seconds(), 0.0)
    if seconds < 10:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours:02d} h"
