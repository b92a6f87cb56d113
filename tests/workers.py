"""A worker loop in a thread, for tests that submit work and wait for it as a caller
in another process would."""

import threading
from contextlib import asynccontextmanager

from asgiref.sync import sync_to_async
from django.db import connections

from executions.wakeups import broker
from executions.worker import drain


def _drain_until(stop: threading.Event) -> None:
    try:
        while not stop.is_set():
            drain(budget=1)
            stop.wait(0.02)
    finally:
        connections.close_all()  # this thread's own; the test database is dropped after the run


@asynccontextmanager
async def worker_running():
    stop = threading.Event()
    thread = threading.Thread(target=_drain_until, args=(stop,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        await sync_to_async(thread.join, thread_sensitive=False)(5)
        # This thread drained the work itself: the wake-ups the submits sent were for it, and
        # left in a shared broker they would count against the next run's wake-up limit.
        await sync_to_async(broker().purge_queue)()
        await sync_to_async(connections.close_all)()  # the async ORM calls' thread
