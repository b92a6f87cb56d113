"""``Idempotency-Key`` for submits: a client that retries a submit (a timeout, a lost
response) gets the first submit's execution back instead of a second run.

A key belongs to its user; reused with another request body it is refused,
since the client is confused about what it asked for.
"""

import hashlib
import json
from collections.abc import Callable
from typing import Any

from django.db import IntegrityError, transaction

from executions.models import Execution, IdempotencyKey

KEY_MAX_CHARS = 200


class IdempotencyMismatch(Exception):
    """The key was first used with another request body."""


def fingerprint(body: Any) -> str:
    """A stable digest of a request body: the same JSON in any key order gives the same digest."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def clean_key(key: str) -> str:
    key = key.strip()
    if not key or len(key) > KEY_MAX_CHARS or not key.isprintable():
        raise ValueError(f"The Idempotency-Key must be 1 to {KEY_MAX_CHARS} printable characters.")
    return key


def _replayed(user, key: str, digest: str) -> Execution | None:
    row = IdempotencyKey.objects.select_related("execution").filter(user=user, key=key).first()
    if row is None:
        return None
    if row.fingerprint != digest:
        raise IdempotencyMismatch(
            f"The Idempotency-Key {key!r} was used with another request body (for execution {row.execution_id})."
        )
    return row.execution


def submit_once(*, user, key: str, digest: str, submit: Callable[[], Execution]) -> tuple[Execution, bool]:
    """Run ``submit`` once per (user, key): returns the execution and whether this call made it.

    Concurrent calls with one key race on the key's unique constraint inside
    the submit's transaction: the loser's submit rolls back with it, and it
    returns the winner's execution once that has committed.
    """
    key = clean_key(key)
    existing = _replayed(user, key, digest)
    if existing is not None:
        return existing, False
    try:
        with transaction.atomic():
            execution = submit()
            IdempotencyKey.objects.create(user=user, key=key, fingerprint=digest, execution=execution)
    except IntegrityError:
        existing = _replayed(user, key, digest)
        if existing is None:
            raise
        return existing, False
    return execution, True
