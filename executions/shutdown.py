"""A worker process's stop request, set by its signal handler and read by the drain loop and runner.

Once set, the worker claims nothing more; an execution it is running gets
``SYMPHONY_STOP_GRACE_SECONDS`` to finish, and is then stopped and put back in
the queue with its attempt not counted.
"""

import threading

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
