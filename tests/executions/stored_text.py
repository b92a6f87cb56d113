"""Rows holding text that no submit writes any more, for the tests that every page still renders them.

Rows written before the services checked their input, or by a writer that
bypassed them, may hold such text: SQLite keeps a lone surrogate inside JSON
(escaped) and NUL anywhere; PostgreSQL refuses both, so there nothing is stored.
"""

from django.db import DatabaseError, transaction

from executions.models import EventKind, Execution, ExecutionEvent, Task
from executions.models import ExecutionState as S

ODD_JSON_TEXT = "lone \ud800 nul \x00 end"
ODD_TEXT = "nul \x00 end"
# What the pages show for them.
SHOWN_JSON_TEXT = "lone \ufffd nul \ufffd end"
SHOWN_TEXT = "nul \ufffd end"


def store_raw(write) -> bool:
    """Run a write the services would never make; False when this database refuses it."""
    try:
        with transaction.atomic():
            write()
    except (DatabaseError, ValueError):
        return False
    return True


def store_odd_text(execution: Execution) -> list[bool]:
    """Odd text in every field a page or a push shows; which of the writes this database took."""
    rows = Execution.objects.filter(pk=execution.pk)
    odd = ODD_JSON_TEXT
    return [
        store_raw(lambda: rows.update(result={"answer": odd, odd: [odd]}, steps=["one", odd], usage={odd: odd})),
        store_raw(lambda: rows.update(error={"type": odd, "message": odd, "traceback": odd, "attempt": odd})),
        store_raw(lambda: rows.update(routing={"strategy": odd, "reason": odd, "candidates": [{"agent": odd}]})),
        store_raw(lambda: rows.update(current_step=ODD_TEXT)),
        store_raw(lambda: Task.objects.filter(pk=execution.task_id).update(name=ODD_TEXT, input_data={"q": odd})),
        store_odd_log(execution),
        store_raw(
            lambda: ExecutionEvent.objects.create(execution=execution, kind=EventKind.OUTPUT, data={"text": odd})
        ),
        store_raw(
            lambda: ExecutionEvent.objects.create(
                execution=execution, kind=EventKind.STATE, to_state=S.QUEUED, data={"reason": odd, "error": odd}
            )
        ),
    ]


def store_odd_log(execution: Execution) -> bool:
    return store_raw(
        lambda: ExecutionEvent.objects.create(execution=execution, kind=EventKind.LOG, data={"lines": [ODD_JSON_TEXT]})
    )
