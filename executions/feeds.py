"""One reader per watched execution per web process: a hint's new events are read and encoded once for all.

With 200 sockets on one execution, each answering a hint with its own query
and its own ``json.dumps``, the 200 queries queued one behind another on the
process's database thread: 140 ms median from commit to client on PostgreSQL,
90 ms on SQLite (bench/websocket_fanout.py). Here the first consumer to ask
starts a read of the events after the newest one the feed holds; the others
wait for that same read, and each sends the encoded frames after its own
cursor. The feed keeps the last ``KEEP`` frames; a consumer further behind (a
reconnect with an old ``?after=``, a slow socket) reads the table itself, as
every consumer did before, so no event is lost, repeated or reordered.

A hint says which event it is about (``event``, its id): a feed that already
holds it answers at once. A hint that does not say needs a read that started
after it arrived, since a read under way may have begun before the commit.
"""

import asyncio
import json
from collections import deque

from channels.db import database_sync_to_async

from executions import presenters, selectors
from executions.models import ExecutionEvent

READ_BATCH = 500


@database_sync_to_async
def _newest_event_id(execution_id: int) -> int:
    return selectors.execution_last_event_id(execution_id=execution_id)


@database_sync_to_async
def read_frames(execution_id: int, after_id: int, limit: int = READ_BATCH) -> list[tuple[int, str]]:
    """``(id, JSON text)`` of the execution's events after ``after_id``, oldest first: what the socket sends."""
    events = selectors.execution_events_after(execution_id=execution_id, after_id=after_id, limit=limit)
    return [(event.pk, encode(event)) for event in events]


def encode(event: ExecutionEvent) -> str:
    return json.dumps(presenters.event_message(event))


class ExecutionFeed:
    """The encoded events of one execution, read once per hint for every consumer in this process.

    Holds the frames with ids in ``(base, last]``: every event of the execution in
    that range that was committed when the read ran. A consumer whose cursor is
    at least ``base`` is served from here.
    """

    KEEP = 2000

    def __init__(self, execution_id: int):
        self.execution_id = execution_id
        self.base: int | None = None  # None until the first read says where the execution is
        self.last = 0
        self.frames: deque[tuple[int, str]] = deque()
        self.users = 0
        self.reads_started = 0
        self.reads_done = 0
        self._reading: asyncio.Future | None = None

    async def frames_after(self, cursor: int, event_id: int | None = None) -> list[tuple[int, str]] | None:
        """The frames after ``cursor`` up to event ``event_id`` at least (None: whatever is committed now).

        None when ``cursor`` is older than what the feed holds: the caller reads the table itself.
        """
        if event_id is None or event_id > self.last:
            await self._read_past(event_id)
        if self.base is None or cursor < self.base:
            return None
        if cursor >= self.last:
            return []
        # Newest first from the right: a consumer that keeps up wants the last few.
        fresh = []
        for frame in reversed(self.frames):
            if frame[0] <= cursor:
                break
            fresh.append(frame)
        fresh.reverse()
        return fresh

    async def _read_past(self, event_id: int | None) -> None:
        # A read already under way may have started before what the caller was hinted was
        # committed: the caller needs one started after it asked (or one that saw event_id).
        needed = self.reads_started + 1
        while self.reads_done < needed and (event_id is None or event_id > self.last):
            if self._reading is None or self._reading.done():
                self._reading = asyncio.ensure_future(self._read())
            await asyncio.shield(self._reading)

    async def _read(self) -> None:
        self.reads_started += 1
        number = self.reads_started
        try:
            if self.base is None:
                self.base = self.last = await _newest_event_id(self.execution_id)
                return
            while True:
                frames = await read_frames(self.execution_id, self.last)
                if frames:
                    self.frames.extend(frames)
                    self.last = frames[-1][0]
                while len(self.frames) > self.KEEP:
                    self.base = self.frames.popleft()[0]
                if len(frames) < READ_BATCH:
                    return
        finally:
            self.reads_done = number


feeds: dict[int, ExecutionFeed] = {}


def feed_join(execution_id: int) -> ExecutionFeed:
    """The execution's feed in this process, created for its first consumer."""
    feed = feeds.get(execution_id)
    if feed is None:
        feed = feeds[execution_id] = ExecutionFeed(execution_id)
    feed.users += 1
    return feed


def feed_leave(feed: ExecutionFeed) -> None:
    """A consumer is gone; the feed's memory goes with its last one."""
    feed.users -= 1
    if feed.users <= 0 and feeds.get(feed.execution_id) is feed:
        del feeds[feed.execution_id]
