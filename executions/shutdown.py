"""A worker process's stop request, set by its signal handler and read by the drain loop and runner.

Once set, the worker claims nothing more; an execution it is running gets
``SYMPHONY_STOP_GRACE_SECONDS`` to finish, and is then stopped and put back in
the queue with its attempt not counted.
"""

import threading

from django.conf import settings

# On a stop, a running agent is given at most this long to answer its cancel (beside the
# stop grace) before the worker puts its execution back and ends, so that every process
# has gone within the grace and 5 s whatever SYMPHONY_CANCEL_GRACE_SECONDS is.
STOP_CANCEL_SECONDS = 2.0

stopping = threading.Event()


def request_stop() -> None:
    """Ask this process's worker to stop.

    Not from inside a signal handler: ``Event.set()`` takes a lock that the
    interrupted thread may hold. ``executions.stop_signals`` turns signals into
    calls from a thread of their own.
    """
    stopping.set()


def stop_requested() -> bool:
    return stopping.is_set()


def stop_cancel_grace() -> float:
    """How long a stopping worker waits for a cancelled agent before it requeues and ends anyway."""
    return min(settings.SYMPHONY_CANCEL_GRACE_SECONDS, STOP_CANCEL_SECONDS)
