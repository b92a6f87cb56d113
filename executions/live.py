"""Live push: tell websocket consumers that an execution (or another group's subject) has new events.

Pushes are hints, never the data: a consumer (or an execution's feed, see
``feeds``) answers one by reading the event table after the last id it sent,
so a dropped or repeated hint loses nothing and sends nothing twice. A hint
names the newest event it is about, when known, so a reader that already has
it need not read.

With a shared channel layer (Redis) whoever commits an event sends the hint.
With the in-memory layer, worker processes cannot reach the web process, so
each web process runs one ``EventRelay`` that polls the table while anyone
is watching: on SQLite whenever the file's change counter moves (checked every
``SYMPHONY_RELAY_WAKE_INTERVAL``), elsewhere every ``SYMPHONY_RELAY_INTERVAL``.
Layers above hint groups of their own (``publish_group``) and add their event
tables to the relay (``register_relay_source``) without this module knowing them.
"""

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import close_old_connections, connections, transaction

logger = logging.getLogger(__name__)

ALL_EXECUTIONS_GROUP = "executions"


def execution_group(execution_id: int) -> str:
    return f"execution.{execution_id}"


def _hint(execution_id: int, event_id: int | None) -> dict:
    # ``event``: the newest event the hint is about, so a consumer already holding it need not read.
    return {"type": "execution.changed", "execution": execution_id, "event": event_id}


def publish_on_commit(execution_id: int, event_id: int) -> None:
    if settings.SYMPHONY_EVENT_RELAY:
        return
    transaction.on_commit(lambda: publish(execution_id, event_id))


def publish(execution_id: int, event_id: int | None = None) -> None:
    """Hint consumers that the execution has new events, up to ``event_id`` if known; returns at once."""
    sender.send(execution_id, event_id)


def group_hint(group: str) -> dict:
    return {"type": "group.changed", "group": group}


def publish_group(group: str) -> None:
    """Hint the consumers of any group (a layer above names its own) with ``group.changed``; returns at once."""
    sender.send(group)


class HintSender:
    """One thread per process sending hints through the channel layer on its own event loop.

    ``async_to_sync`` per commit built a new event loop and a new Redis
    connection each time: 4-5 ms on a worker's critical path, three or more
    times per execution (measured). Here a commit only notes an id; ids noted
    while a send is under way go out together, once each.

    A hint is for an execution (its id) or for a group by name (a str).
    Hints are only hints, so nothing here may grow or stop for good: at most
    ``limit`` distinct executions or groups wait to be hinted and further ones are dropped
    (counted, and logged at most once per ``log_interval`` seconds), and a failure
    anywhere, getting the layer included, costs that batch and nothing after it.
    A dropped or failed hint is recovered like one lost at process exit: the
    consumer replays from the event table on its next hint or reconnect.
    """

    def __init__(
        self,
        *,
        layer: Callable[[], Any] = get_channel_layer,
        limit: int = 10_000,
        log_interval: float = 60.0,
    ):
        self._get_layer = layer
        self.limit = limit
        self.log_interval = log_interval
        self.dropped = 0
        self._dropped_unlogged = 0
        self._last_drop_log: float | None = None
        self.start_over()

    def start_over(self) -> None:
        """Fresh state: on creation, and in a forked child, which has the parent's state but not its thread."""
        self._ready = threading.Condition()
        # Execution id or group -> the newest event id it is hinted for (None: unknown); each waits once.
        self._pending: dict[int | str, int | None] = {}
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> int:
        """How many executions and groups wait to be hinted."""
        with self._ready:
            return len(self._pending)

    def send(self, target: int | str, event_id: int | None = None) -> None:
        """Note an execution id (and the event it is about, if known), or a group's name, to hint."""
        with self._ready:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="live-hints", daemon=True)
                self._thread.start()
            if target not in self._pending:
                if len(self._pending) >= self.limit:
                    self._drop()
                    return
                self._pending[target] = event_id
            else:
                self._pending[target] = newest(self._pending[target], event_id)
            self._ready.notify()

    def _drop(self) -> None:
        self.dropped += 1
        self._dropped_unlogged += 1
        now = time.monotonic()
        if self._last_drop_log is None or now - self._last_drop_log >= self.log_interval:
            logger.warning(
                "Dropped %d live hints: %d executions or groups already wait to be hinted (the channel layer "
                "is slow or down); their pages catch up on their next change or reconnect",
                self._dropped_unlogged,
                self.limit,
            )
            self._last_drop_log, self._dropped_unlogged = now, 0

    def _take(self) -> dict[int | str, int | None]:
        with self._ready:
            while not self._pending:
                self._ready.wait()
            batch, self._pending = self._pending, {}
        return batch

    def _run(self) -> None:
        loop = None
        while True:
            batch = self._take()
            try:
                loop = loop or asyncio.new_event_loop()
                # Asked every time: channels caches the layer, and a layer that could not be
                # built (a bad setting, Redis not answering) is tried again for the next batch.
                layer = self._get_layer()
                if layer is not None:
                    loop.run_until_complete(_send_hints(layer, batch))
            except Exception:  # a lost hint is recovered by replay; keep the thread alive
                logger.warning("Could not push live hints for %s", list(batch)[:20], exc_info=True)


sender = HintSender()
os.register_at_fork(after_in_child=sender.start_over)


def newest(first: int | None, second: int | None) -> int | None:
    """Two hints for one execution as one: the newer event, or unknown if either does not say."""
    return None if first is None or second is None else max(first, second)


async def _send_hints(layer, targets: dict[int | str, int | None]) -> None:
    execution_ids = [target for target in targets if isinstance(target, int)]
    for execution_id in execution_ids:
        await layer.group_send(execution_group(execution_id), _hint(execution_id, targets[execution_id]))
    for execution_id in execution_ids:
        await layer.group_send(ALL_EXECUTIONS_GROUP, _hint(execution_id, targets[execution_id]))
    for group in targets:
        if isinstance(group, str):
            await layer.group_send(group, group_hint(group))


def rows_since(queryset, after_id: int | None, overlap: int, key: str) -> list[tuple[int, Any]]:
    """``(id, key)`` of the rows from ``overlap`` ids before ``after_id`` on, in id order (at most 5,000).

    ``after_id`` None is a relay starting up: it starts from the newest row, and
    hints the recent ones too, so a row committed while the first consumer was
    replaying is not missed.
    """
    close_old_connections()
    if after_id is None:
        after_id = queryset.order_by("-id").values_list("id", flat=True).first() or 0
    return list(queryset.filter(id__gt=max(after_id - overlap, 0)).order_by("id").values_list("id", key)[:5000])


def _events_since(after_id: int | None, overlap: int) -> list[tuple[int, int]]:
    from executions.models import ExecutionEvent

    return rows_since(ExecutionEvent.objects.all(), after_id, overlap, "execution_id")


# A relay source: ``fetch(after_id, overlap)`` gives ``(row id, group to hint)`` for the rows
# committed after ``after_id`` (and ``overlap`` ids before it), in id order; ``rows_since`` does that.
RelaySource = Callable[[int | None, int], list[tuple[int, str]]]
relay_sources: list[RelaySource] = []


def register_relay_source(fetch: RelaySource) -> RelaySource:
    """Have the relay also poll ``fetch`` (once, usually from an AppConfig.ready) and hint the groups it names."""
    if fetch not in relay_sources:
        relay_sources.append(fetch)
    return fetch


class _Cursor:
    """Where the relay is in one table: the last id read, and the ids already hinted in the overlap."""

    def __init__(self, overlap: int):
        self.last_id: int | None = None
        self.seen: deque[int] = deque(maxlen=4 * overlap)

    def fresh(self, rows: list[tuple[int, Any]]) -> dict[Any, int]:
        """The keys of the rows not hinted before, once each, in order, with their newest row's id;
        moves the cursor past ``rows``."""
        fresh = [(row_id, key) for row_id, key in rows if row_id not in self.seen]
        self.seen.extend(row_id for row_id, _ in fresh)
        if rows:
            self.last_id = max(self.last_id or 0, rows[-1][0])
        elif self.last_id is None:
            self.last_id = 0
        keys: dict[Any, int] = {}
        for row_id, key in fresh:
            keys[key] = max(keys.get(key, row_id), row_id)
        return keys


class EventRelay:
    """One per web process: polls committed events and hints local consumers."""

    # On PostgreSQL ids are taken before commit, so a row can appear behind a newer one;
    # re-reading a window of recent ids catches it, and the seen-set keeps hints unique.
    OVERLAP = 200

    def __init__(self):
        self.watchers = 0
        self.task: asyncio.Task | None = None
        self.cursors: dict[Callable, _Cursor] = {}

    async def watch(self) -> None:
        self.watchers += 1
        if self.task is None or self.task.done():
            self.task = asyncio.ensure_future(self._run())

    async def unwatch(self) -> None:
        self.watchers = max(0, self.watchers - 1)

    async def _run(self) -> None:
        layer = get_channel_layer()
        commits = CommitCounter.for_default_database()
        try:
            while self.watchers > 0:
                await self._poll(layer)
                await self._wait(commits)
        finally:
            if commits is not None:
                commits.close()

    async def _poll(self, layer) -> None:
        # The executions' events hint execution ids; every other source names its groups.
        for fetch in (_events_since, *relay_sources):
            cursor = self.cursors.setdefault(fetch, _Cursor(self.OVERLAP))
            try:
                rows = await sync_to_async(fetch, thread_sensitive=False)(cursor.last_id, self.OVERLAP)
                changed = cursor.fresh(rows)
                if changed:
                    await _send_hints(layer, changed)
            except Exception:
                logger.exception("Event relay poll of %s failed; retrying", getattr(fetch, "__name__", fetch))

    async def _wait(self, commits: "CommitCounter | None") -> None:
        """Until the next poll: until a commit, with SQLite's change counter, else a fixed interval.

        A poll costs a query per source on a thread (about 0.3 ms of CPU); the
        counter costs 2 us on the loop, so it can be asked every few ms and the
        relay adds that, not half of ``SYMPHONY_RELAY_INTERVAL``, to a hint.
        """
        if commits is None:
            await asyncio.sleep(settings.SYMPHONY_RELAY_INTERVAL)
            return
        loop = asyncio.get_running_loop()
        # A safety net only: the counter moves on every commit of every other connection.
        poll_anyway = loop.time() + max(1.0, settings.SYMPHONY_RELAY_INTERVAL)
        while self.watchers > 0 and loop.time() < poll_anyway:
            await asyncio.sleep(settings.SYMPHONY_RELAY_WAKE_INTERVAL)
            if commits.moved():
                return


class CommitCounter:
    """SQLite's ``PRAGMA data_version`` on a connection of its own: it moves whenever another connection commits."""

    def __init__(self, path: str):
        # timeout=0: asked on the event loop, it must never wait for a lock.
        self._conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
        self._version: int | None = None

    @classmethod
    def for_default_database(cls) -> "CommitCounter | None":
        """One for the default database if it is a SQLite file; None otherwise (PostgreSQL, in memory)."""
        database = connections["default"]
        name = str(database.settings_dict["NAME"])
        if database.vendor != "sqlite" or database.is_in_memory_db() or not os.path.exists(name):
            return None
        return cls(name)

    def moved(self) -> bool:
        try:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
        except sqlite3.Error:
            return True  # cannot tell: poll the table
        moved, self._version = version != self._version, version
        return moved

    def close(self) -> None:
        self._conn.close()


relay = EventRelay()


async def watch() -> None:
    if settings.SYMPHONY_EVENT_RELAY:
        await relay.watch()


async def unwatch() -> None:
    if settings.SYMPHONY_EVENT_RELAY:
        await relay.unwatch()
