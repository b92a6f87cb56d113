"""The execution lifecycle: one transition table and the one function that writes ``state``.

Every transition is a compare-and-set (``UPDATE ... WHERE id = ? AND state = ?``)
that writes its event row in the same transaction; losing a race raises
``TransitionConflict`` and changes nothing.
"""

import contextlib
import logging
from collections.abc import Iterable
from typing import Any

from django.db import connection, transaction
from django.db.models import Expression, Field
from django.utils import timezone

from executions import live
from executions.models import EventKind, Execution, ExecutionEvent
from executions.models import ExecutionState as S
from executions.signals import execution_finished, outcome_hooks

logger = logging.getLogger(__name__)

ALLOWED_TRANSITIONS: dict[str, frozenset[str]] = {
    S.PENDING: frozenset({S.QUEUED, S.PAUSED, S.CANCELLED}),
    S.QUEUED: frozenset({S.PREPARING, S.PAUSED, S.CANCELLED}),
    S.PREPARING: frozenset({S.RUNNING, S.QUEUED, S.FAILED, S.CANCELLED, S.TIMED_OUT}),
    S.RUNNING: frozenset({S.COMPLETED, S.FAILED, S.CANCELLED, S.TIMED_OUT, S.QUEUED}),
    S.PAUSED: frozenset({S.QUEUED, S.CANCELLED}),
    # A retry is a new attempt of the same execution; the failed attempt stays in the history.
    S.FAILED: frozenset({S.QUEUED}),
    S.COMPLETED: frozenset(),
    S.CANCELLED: frozenset(),
    S.TIMED_OUT: frozenset(),
}

TERMINAL = frozenset(state for state, targets in ALLOWED_TRANSITIONS.items() if not targets)
FINISHED = TERMINAL | {S.FAILED}
ACTIVE = frozenset({S.PREPARING, S.RUNNING})
WAITING = frozenset({S.PENDING, S.QUEUED, S.PAUSED})


class TransitionError(Exception):
    """A transition that did not happen; nothing was written."""


class InvalidTransition(TransitionError):
    def __init__(self, execution_id: int, from_state: str, to_state: str, *, expected: Iterable[str] = ()):
        allowed = ", ".join(sorted(ALLOWED_TRANSITIONS[from_state])) or "nothing (it is final)"
        if expected and from_state not in expected:
            opening = f"Execution {execution_id} is {from_state}, not {'/'.join(sorted(expected))}"
        else:
            opening = f"Execution {execution_id} cannot go from {from_state} to {to_state}"
        super().__init__(f"{opening}; from {from_state} it can go to {allowed}.")
        self.execution_id, self.from_state, self.to_state = execution_id, from_state, to_state


class TransitionConflict(TransitionError):
    """Another actor changed the execution first: the compare-and-set lost."""


def can_transition(from_state: str, to_state: str) -> bool:
    return to_state in ALLOWED_TRANSITIONS[from_state]


def _current_state(execution_id: int, *, lock: bool = False) -> str:
    rows = Execution.objects.select_for_update() if lock else Execution.objects
    current = rows.filter(pk=execution_id).values_list("state", flat=True).first()
    if current is None:
        raise Execution.DoesNotExist(f"Execution {execution_id} does not exist.")
    return current


def _refusal(execution_id: int, current: str, expected: set[str], to_state: str) -> TransitionError:
    """Why the execution is not where the caller expected it: a race lost, or a move its state never allows."""
    if not can_transition(current, to_state):
        return InvalidTransition(execution_id, current, to_state, expected=expected)
    wanted = "/".join(sorted(expected))
    return TransitionConflict(f"Execution {execution_id} is {current}, not {wanted}; another actor got there first.")


def _atomic():
    """A transaction of its own, or none inside the caller's.

    No savepoint is needed there: a refused transition has written nothing (its
    compare-and-set matched no row), and a database error breaks the caller's
    transaction with or without one. Inside a worker's claim or its batch of ends
    a savepoint costs two round trips per transition (on PostgreSQL, measured:
    about a fifth of a no-op execution's statements).
    """
    if transaction.get_connection().in_atomic_block:
        return contextlib.nullcontext()
    return transaction.atomic()


def transition(
    execution_id: int,
    to_state: str,
    *,
    expected: Iterable[str],
    where: dict[str, Any] | None = None,
    fields: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    actor=None,
) -> ExecutionEvent:
    """Move one execution to ``to_state`` and record why, atomically.

    ``expected`` names the states the caller believes the execution is in: it
    is required, because a transition is always a decision taken from a state
    someone saw. If the execution is elsewhere the call raises
    ``TransitionConflict`` (or ``InvalidTransition`` when its state never
    allows the move), and so does a mismatch of the extra conditions in
    ``where``. ``fields`` are written in the same UPDATE; ``data`` goes into the
    event row, and ``actor`` (the user who asked for it, if a person did) too.
    """
    expected = set(expected)
    if not expected:
        raise ValueError("transition() needs the states the execution is expected to be in.")
    now = timezone.now()
    with _atomic():
        # With one expected state the compare-and-set needs no read first; with several the
        # row is read (and locked, on PostgreSQL) to learn which one it is in.
        current = next(iter(expected)) if len(expected) == 1 else _current_state(execution_id, lock=True)
        if current not in expected:
            raise _refusal(execution_id, current, expected, to_state)
        if not can_transition(current, to_state):
            actual = _current_state(execution_id)
            if actual != current:
                raise _refusal(execution_id, actual, expected, to_state)
            raise InvalidTransition(execution_id, current, to_state)
        values = dict(fields or {})
        if to_state in FINISHED:
            values.setdefault("finished_at", now)
        values = {"state": to_state, "updated_at": now, **values}
        event = _move(execution_id, current=current, where=where or {}, values=values, data=data or {}, actor=actor)
        if event is None:
            actual = _current_state(execution_id)
            if actual != current:
                raise _refusal(execution_id, actual, expected, to_state)
            raise TransitionConflict(f"Execution {execution_id} changed while moving it to {to_state}.")
        live.publish_on_commit(execution_id, event.pk)
        if to_state in FINISHED or current == S.FAILED:
            _outcome_changed(execution_id, current, to_state)
        if to_state in FINISHED:
            transaction.on_commit(
                lambda: execution_finished.send(sender=Execution, execution_id=execution_id, state=to_state)
            )
    return event


def _outcome_changed(execution_id: int, from_state: str, to_state: str) -> None:
    """Call the layers' hooks inside the transition's transaction, each in a savepoint of its own."""
    for hook in outcome_hooks:
        try:
            with transaction.atomic():
                hook(execution_id, from_state, to_state)
        except Exception:
            logger.exception("A hook on execution %s's move to %s failed; the move stands", execution_id, to_state)


# The two writes of a transition, as hand-written SQL: the compare-and-set and the event row.
#
# Every execution makes at least three transitions, and building each ``UPDATE``
# and ``INSERT`` with the ORM cost more than running it: one process draining
# 2,000 no-op executions on SQLite ran 396 a second with the ORM writes, 752 with
# these (2.5 ms an execution, then 1.3 ms; the statements are the same). On
# PostgreSQL, where a worker waits on round trips, the same process ran 279 a
# second, 318 without savepoints inside a worker's transactions, 391 with a
# transition in one statement. Values go
# through each field's own ``get_db_prep_save``, so what is stored is exactly
# what the ORM would store; anything out of the ordinary (a lookup, an
# expression, a relation) is left to the ORM.

EXECUTIONS = Execution._meta.db_table
EVENTS = ExecutionEvent._meta.db_table
EVENT_FIELDS = [
    ExecutionEvent._meta.get_field(name)
    for name in ("execution", "kind", "from_state", "to_state", "data", "actor", "created_at")
]


def _plain_field(name: str) -> Field | None:
    """The concrete, non-relation field called ``name`` (``id`` included), or None."""
    if "__" in name:
        return None
    try:
        field = Execution._meta.get_field(name)
    except Exception:  # noqa: BLE001 - FieldDoesNotExist and the like: the ORM will explain
        return None
    return None if field.is_relation or not field.concrete else field


def _move(
    execution_id: int, *, current: str, where: dict, values: dict, data: dict, actor=None
) -> ExecutionEvent | None:
    """The compare-and-set and its event row; None (and nothing written) if it matched no row.

    On PostgreSQL both are one statement (a data-modifying ``WITH``), so a
    transition is one round trip: a no-op execution's three transitions were
    two thirds of the round trips a worker made for it.
    """
    event = ExecutionEvent(
        execution_id=execution_id,
        kind=EventKind.STATE,
        from_state=current,
        to_state=values["state"],
        data=data,
        actor_id=getattr(actor, "pk", None),
        created_at=timezone.now(),
    )
    update = _update_sql(execution_id, current=current, where=where, values=values)
    if update is None:
        if Execution.objects.filter(pk=execution_id, state=current, **where).update(**values) != 1:
            return None
        return _inserted(event)
    sql, params = update
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            if cursor.rowcount != 1:
                return None
        return _inserted(event)
    columns = ", ".join(connection.ops.quote_name(field.column) for field in EVENT_FIELDS)
    rest = ", ".join(["%s"] * (len(EVENT_FIELDS) - 1))
    pk = connection.ops.quote_name(Execution._meta.pk.column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH moved AS ({sql} RETURNING {pk}) "
            f"INSERT INTO {EVENTS} ({columns}) SELECT {pk}, {rest} FROM moved RETURNING id",
            [*params, *_event_params(event)[1:]],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    event.pk, event._state.adding = row[0], False
    return event


def _update_sql(execution_id: int, *, current: str, where: dict, values: dict) -> tuple[str, list] | None:
    """``UPDATE ... SET values WHERE id AND state = current AND where``, or None if the ORM must write it."""
    fields = {name: _plain_field(name) for name in [*values, *where]}
    if None in fields.values() or any(isinstance(value, Expression) for value in values.values()):
        return None
    quote = connection.ops.quote_name
    assignments, params = [], []
    for name, value in values.items():
        assignments.append(f"{quote(fields[name].column)} = %s")
        params.append(fields[name].get_db_prep_save(value, connection))
    conditions = [f"{quote(Execution._meta.pk.column)} = %s", "state = %s"]
    params += [execution_id, current]
    for name, value in where.items():
        if value is None:
            conditions.append(f"{quote(fields[name].column)} IS NULL")
        else:
            conditions.append(f"{quote(fields[name].column)} = %s")
            params.append(fields[name].get_db_prep_value(value, connection))
    return f"UPDATE {EXECUTIONS} SET {', '.join(assignments)} WHERE {' AND '.join(conditions)}", params


def _event_params(event: ExecutionEvent) -> list:
    return [field.get_db_prep_save(getattr(event, field.attname), connection) for field in EVENT_FIELDS]


def _inserted(event: ExecutionEvent) -> ExecutionEvent:
    columns = ", ".join(connection.ops.quote_name(field.column) for field in EVENT_FIELDS)
    placeholders = ", ".join(["%s"] * len(EVENT_FIELDS))
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:
            cursor.execute(
                f"INSERT INTO {EVENTS} ({columns}) VALUES ({placeholders}) RETURNING id", _event_params(event)
            )
            event.pk = cursor.fetchone()[0]
        else:
            cursor.execute(f"INSERT INTO {EVENTS} ({columns}) VALUES ({placeholders})", _event_params(event))
            event.pk = cursor.lastrowid
    event._state.adding = False
    return event
