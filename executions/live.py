"""Live push: tell websocket consumers that an execution has new events.

Pushes are hints, never the data: a consumer answers one by reading the event
table after the last id it sent, so a dropped or repeated hint loses nothing
and sends nothing twice.

With a shared channel layer (Redis) whoever commits an event sends the hint.
With the in-memory layer, worker processes cannot reach the web process, so
each web process runs one ``EventRelay`` that polls the table while anyone
is watching.
"""

import asyncio
import logging
import os
import queue
import threading
from collections import deque

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, transaction

logger = logging.getLogger(__name__)

ALL_EXECUTIONS_GROUP = "executions"


def execution_group(execution_id: int) -> str:
    return f"execution.{execution_id}"


def _hint(execution_id: int) -> dict:
    return {"type": "execution.changed", "execution": execution_id}


def publish_on_commit(execution_id: int, event_id: int) -> None:
    if settings.SYMPHONY_EVENT_RELAY:
        return
    transaction.on_commit(lambda: publish(execution_id))


def publish(execution_id: int) -> None:
    """Hint consumers that the execution has new events; returns at once."""
    sender.send(execution_id)


class HintSender:
    """One thread per process sending hints through the channel layer on its own event loop.

    ``async_to_sync`` per commit built a new event loop and a new Redis
    connection each time: 4-5 ms on a worker's critical path, three or more
    times per execution (measured). Here a commit only queues an id; hints
    queued together are sent once each. A hint lost at process exit is
    recovered by replay, like any other.
    """

    def __init__(self):
        self._ids: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def send(self, execution_id: int) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked worker: start this process's thread
                self._ids = queue.SimpleQueue()
                threading.Thread(target=self._run, args=(self._ids,), name="live-hints", daemon=True).start()
                self._pid = os.getpid()
        self._ids.put(execution_id)

    def _run(self, ids: queue.SimpleQueue) -> None:
        loop = asyncio.new_event_loop()
        layer = get_channel_layer()
        while True:
            batch = [ids.get()]
            while not ids.empty():
                batch.append(ids.get_nowait())
            if layer is None:
                continue
            try:
                loop.run_until_complete(_send_hints(layer, list(dict.fromkeys(batch))))
            except Exception:  # a lost hint is recovered by replay; keep the thread alive
                logger.warning("Could not push live hints for executions %s", batch, exc_info=True)


sender = HintSender()


async def _send_hints(layer, execution_ids) -> None:
    for execution_id in execution_ids:
        await layer.group_send(execution_group(execution_id), _hint(execution_id))
    for execution_id in execution_ids:
        await layer.group_send(ALL_EXECUTIONS_GROUP, _hint(execution_id))


def _events_since(after_id: int | None, overlap: int) -> list[tuple[int, int]]:
    from executions.models import ExecutionEvent

    close_old_connections()
    if after_id is None:
        # Starting up: hint recent changes too, so an event committed while the
        # first consumer was replaying is not missed.
        after_id = ExecutionEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
    return list(
        ExecutionEvent.objects.filter(id__gt=max(after_id - overlap, 0))
        .order_by("id")
        .values_list("id", "execution_id")[:5000]
    )


class EventRelay:
    """One per web process: polls committed events and hints local consumers."""

    # On PostgreSQL ids are taken before commit, so a row can appear behind a newer one;
    # re-reading a window of recent ids catches it, and the seen-set keeps hints unique.
    OVERLAP = 200

    def __init__(self):
        self.watchers = 0
        self.task: asyncio.Task | None = None
        self.last_id: int | None = None
        self.seen: deque[int] = deque(maxlen=4 * self.OVERLAP)

    async def watch(self) -> None:
        self.watchers += 1
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    async def unwatch(self) -> None:
        self.watchers = max(0, self.watchers - 1)

    async def _run(self) -> None:
        layer = get_channel_layer()
        fetch = sync_to_async(_events_since, thread_sensitive=False)
        while self.watchers > 0:
            try:
                rows = await fetch(self.last_id, self.OVERLAP)
                fresh = [(eid, ex) for eid, ex in rows if eid not in self.seen]
                self.seen.extend(eid for eid, _ in fresh)
                if rows:
                    self.last_id = max(self.last_id or 0, rows[-1][0])
                elif self.last_id is None:
                    self.last_id = 0
                changed = list(dict.fromkeys(ex for _, ex in fresh))
                if changed:
                    await _send_hints(layer, changed)
            except Exception:
                logger.exception("Event relay poll failed; retrying")
            await asyncio.sleep(settings.SYMPHONY_RELAY_INTERVAL)


relay = EventRelay()


async def watch() -> None:
    if settings.SYMPHONY_EVENT_RELAY:
        await relay.watch()


async def unwatch() -> None:
    if settings.SYMPHONY_EVENT_RELAY:
        await relay.unwatch()
