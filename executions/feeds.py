"""One reader per watched execution per web process: a hint's new events are read, encoded and pushed once.

With 200 sockets on one execution, each subscribed to the execution's group and
answering every hint with its own query and ``json.dumps``, a hint cost 200
channel-layer deliveries and 200 queries queued on the process's database
thread: 140 ms median from commit to client on PostgreSQL + Redis, 90 ms on
SQLite, about 300 us of web CPU per frame (bench/websocket_fanout.py). Here the
execution's ``ExecutionFeed`` alone is subscribed to the group; on a hint it
reads the events after the newest one it holds, once, and sends the encoded
frames to every socket that is caught up ("live" followers): 16-22 ms median,
about 60 us per frame.

A socket that connects, or is further behind than the frames the feed
remembers (``KEEP``, ``KEEP_CHARS``; a reconnect with an old ``?after=``),
catches up first: from the feed's frames where it can, else from the table
itself, as every socket did before; then it joins the live followers with no
await in between, so no event is lost, repeated or reordered. A hint names its newest event (``event``); a
feed that already read it does nothing. A hint that does not say needs a read
that started after it arrived, since a read under way may have begun before
the commit it is about.
"""

import asyncio
import contextlib
import json
import logging
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer

from executions import live, presenters, selectors
from executions.models import ExecutionEvent

logger = logging.getLogger(__name__)

READ_BATCH = 500
RETRY_SECONDS = 1.0  # after a failed read, read again this soon even without a hint


class Follower(Protocol):
    """A socket on the feed: the id of the last event it was sent, and how to send it one."""

    cursor: int

    async def send_frame(self, event_id: int, text: str) -> None: ...


def _newest_event_id(execution_id: int) -> int:
    return selectors.execution_last_event_id(execution_id=execution_id)


def _frames_after(execution_id: int, after_id: int) -> list[tuple[int, str]]:
    """``(id, JSON text)`` of the execution's events after ``after_id``, oldest first: what the socket sends."""
    events = selectors.execution_events_after(execution_id=execution_id, after_id=after_id, limit=READ_BATCH)
    return [(event.pk, encode(event)) for event in events]


# A socket replaying from an old ``?after=`` reads the table itself, 500 events a read, on the
# process's database thread. The feed's reads, which every caught-up socket waits for, have a
# thread (and a database connection) of their own, so they never queue behind a replay.
_live_reads = ThreadPoolExecutor(max_workers=1, thread_name_prefix="live-feed-reads")
read_frames = database_sync_to_async(_frames_after)
_read_new_frames = database_sync_to_async(_frames_after, thread_sensitive=False, executor=_live_reads)
_read_newest_event_id = database_sync_to_async(_newest_event_id, thread_sensitive=False, executor=_live_reads)


def encode(event: ExecutionEvent) -> str:
    return json.dumps(presenters.event_message(event))


class ExecutionFeed:
    """The encoded events of one execution, read once per hint and pushed to every live follower here.

    Holds the frames with ids in ``(base, last]``: every event of the execution in
    that range that was committed when it was read. A follower whose cursor is at
    least ``base`` catches up from here.
    """

    KEEP = 2000
    KEEP_CHARS = 8_000_000  # a log event may carry up to a megabyte of lines

    def __init__(self, execution_id: int):
        self.execution_id = execution_id
        self.base: int | None = None  # None until the first read says where the execution is
        self.last = 0
        self.frames: deque[tuple[int, str]] = deque()
        self.chars = 0
        self.live: set[Follower] = set()
        self.users = 0
        self.reads_started = 0
        self.reads_done = 0
        self._reading: asyncio.Future | None = None
        self._layer = None
        self._channel: str | None = None
        self._listener: asyncio.Task | None = None
        self._subscribed: asyncio.Future | None = None

    # Subscription --------------------------------------------------------------------

    async def subscribe(self) -> None:
        """Join the execution's group (once, whoever asks first); returns when hints will reach the feed."""
        if self._subscribed is None:
            self._subscribed = asyncio.ensure_future(self._subscribe())
        await asyncio.shield(self._subscribed)

    async def _subscribe(self) -> None:
        self._layer = get_channel_layer()
        self._channel = await self._layer.new_channel()
        await self._layer.group_add(live.execution_group(self.execution_id), self._channel)
        self._listener = asyncio.ensure_future(self._listen())

    async def close(self) -> None:
        if self._subscribed is None:
            return
        with contextlib.suppress(Exception):
            await asyncio.shield(self._subscribed)  # a subscription under way finishes first
        if self._listener is not None:
            self._listener.cancel()
        if self._channel is not None:
            with contextlib.suppress(Exception):  # a layer that is down forgets the membership by itself
                await self._layer.group_discard(live.execution_group(self.execution_id), self._channel)

    async def _listen(self) -> None:
        failed = False
        while True:
            try:
                message = await asyncio.wait_for(self._layer.receive(self._channel), RETRY_SECONDS if failed else None)
            except TimeoutError:
                message = {}
            except Exception:
                # The layer is down (Redis restarting): come back to the group, which a restarted
                # Redis forgot, then read whatever was committed meanwhile.
                logger.warning("Lost the hints of execution %s; joining again", self.execution_id, exc_info=True)
                await asyncio.sleep(RETRY_SECONDS)
                with contextlib.suppress(Exception):
                    await self._layer.group_add(live.execution_group(self.execution_id), self._channel)
                failed = True
                continue
            try:
                # After a failure the hint that was lost is not known: read whatever is there.
                await self._read_past(None if failed else message.get("event"))
                failed = False
            except Exception:
                logger.exception("Could not read the new events of execution %s; retrying", self.execution_id)
                failed = True

    # Followers -----------------------------------------------------------------------

    async def follow(self, follower: Follower) -> None:
        """Send ``follower`` what it has not seen (from here, else from the table), then make it live."""
        frames = await self._frames_after(follower.cursor, None)  # a read started after it subscribed
        while True:
            behind = frames is None
            if behind:
                frames = await read_frames(self.execution_id, follower.cursor)  # older than the feed: the table
            elif not frames:
                # Caught up, and no await since the check: every later read is pushed to it.
                self.live.add(follower)
                return
            for event_id, text in frames:
                await follower.send_frame(event_id, text)
            if behind and len(frames) < READ_BATCH:
                # The table has nothing more after the cursor, so nothing lies between it and the feed's frames.
                frames = self._held_after(max(follower.cursor, self.base))
            else:
                frames = self._held_after(follower.cursor)

    def unfollow(self, follower: Follower) -> None:
        self.live.discard(follower)

    # Reading -------------------------------------------------------------------------

    async def _frames_after(self, cursor: int, event_id: int | None) -> list[tuple[int, str]] | None:
        if event_id is None or event_id > self.last:
            await self._read_past(event_id)
        return self._held_after(cursor)

    def _held_after(self, cursor: int) -> list[tuple[int, str]] | None:
        """The frames held after ``cursor``; None when ``cursor`` is older than what the feed holds."""
        if self.base is None or cursor < self.base:
            return None
        if cursor >= self.last:
            return []
        fresh = []
        for frame in reversed(self.frames):  # a follower that keeps up wants the last few
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
                self.base = self.last = await _read_newest_event_id(self.execution_id)
                return
            while True:
                frames = await _read_new_frames(self.execution_id, self.last)
                if frames:
                    self.frames.extend(frames)
                    self.chars += sum(len(text) for _, text in frames)
                    self.last = frames[-1][0]
                    while len(self.frames) > self.KEEP or self.chars > self.KEEP_CHARS:
                        self.base, text = self.frames.popleft()
                        self.chars -= len(text)
                    await self._push(frames)
                if len(frames) < READ_BATCH:
                    return
        finally:
            self.reads_done = number

    async def _push(self, frames: list[tuple[int, str]]) -> None:
        # A send hands the frame to the server's write buffer and does not wait for the
        # client, so a slow reader does not hold up the others.
        for follower in list(self.live):
            try:
                for event_id, text in frames:
                    if event_id > follower.cursor:
                        await follower.send_frame(event_id, text)
            except Exception:
                logger.warning("Could not push to a socket on execution %s", self.execution_id, exc_info=True)
                self.live.discard(follower)


feeds: dict[int, ExecutionFeed] = {}


async def feed_join(execution_id: int) -> ExecutionFeed:
    """The execution's feed in this process, subscribed to the execution's hints; created for its first user."""
    feed = feeds.get(execution_id)
    if feed is None:
        feed = feeds[execution_id] = ExecutionFeed(execution_id)
    feed.users += 1
    try:
        await feed.subscribe()
    except BaseException:
        await feed_leave(feed)
        raise
    return feed


async def feed_leave(feed: ExecutionFeed) -> None:
    """A user is gone; the feed, its subscription and its memory go with the last one."""
    feed.users -= 1
    if feed.users <= 0:
        if feeds.get(feed.execution_id) is feed:
            del feeds[feed.execution_id]
        await feed.close()
