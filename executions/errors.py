"""What went wrong with an attempt, as stored on the execution, and whether another attempt can help.

An agent's exception is retried only when it is transient: a timeout, a
connection error, a busy or broken server (the ``llm`` and ``http`` kinds mark
429 and 5xx answers ``retryable``), or any exception that carries
``retryable = True``. Everything else (a ``TypeError``, a ``KeyError`` from bad
input, an agent that cannot be built) would fail the same way again, so it
fails at once and the error says why it was not retried.
"""

import asyncio
import socket

from executions.storable import storable_text

MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_CHARS = 20000

# Failures of the world rather than of the code or its input: worth another attempt.
TRANSIENT = (TimeoutError, asyncio.TimeoutError, socket.timeout, ConnectionError)


def is_transient(exc: BaseException) -> bool:
    """``exc.retryable`` when the exception says; otherwise whether it is a timeout or connection error."""
    marked = getattr(exc, "retryable", None)
    if isinstance(marked, bool):
        return marked
    if isinstance(exc, TRANSIENT):
        return True
    return _is_transport_error(exc)


def _is_transport_error(exc: BaseException) -> bool:
    """httpx's and the openai client's network failures, without importing them where they are not used."""
    names = {f"{kind.__module__}.{kind.__qualname__}" for kind in type(exc).__mro__}
    return bool(names & {"httpx.TransportError", "openai.APIConnectionError", "openai.APITimeoutError"})


def qualified_name(kind: type) -> str:
    return kind.__name__ if kind.__module__ in ("builtins", "__main__") else f"{kind.__module__}.{kind.__name__}"


def error_detail(
    *,
    kind: str,
    message: str,
    attempt: int,
    agent: str,
    retryable: bool,
    traceback: str = "",
    **extra,
) -> dict:
    """The one shape of ``Execution.error`` (and of the ``error`` in state events)."""
    return {
        "type": kind,
        "message": storable_text(message[:MAX_MESSAGE_CHARS])[0],
        "traceback": storable_text(traceback[-MAX_TRACEBACK_CHARS:])[0],
        "attempt": attempt,
        "agent": agent,
        "retryable": retryable,
        **extra,
    }


def exception_detail(exc: BaseException, traceback: str, *, attempt: int, agent: str) -> dict:
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__}>"
    return error_detail(
        kind=qualified_name(type(exc)),
        message=message,
        traceback=traceback,
        attempt=attempt,
        agent=agent,
        retryable=is_transient(exc),
    )


def not_retried_because(error: dict, *, attempt: int, max_attempts: int) -> str:
    """The line a person reads to learn why this failure is final."""
    if not error.get("retryable"):
        return (
            f"not retried because {error.get('type') or 'this error'} is not transient "
            "(only timeouts, connection errors, busy servers and errors marked retryable = True are retried)"
        )
    return f"not retried because no attempts are left ({attempt} of {max_attempts} used)"
