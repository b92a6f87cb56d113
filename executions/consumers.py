"""Websocket consumers: they authenticate, subscribe and read; they never write.

Each consumer joins its live groups, asks this web process to relay committed
events (``live.watch``) and answers every ``execution.changed`` hint by reading
the table after what it already sent, so a lost or repeated hint changes
nothing and no event is sent twice.

- ``ExecutionEventsConsumer``: ``ws/executions/<id>/?after=<event id>`` for
  programs, one JSON event object (``ExecutionEvent.as_message()``) per message.
  It follows the execution's feed (``feeds``), which hears the hints and reads
  each new event once for every socket on that execution in this process.
- ``ExecutionPageConsumer`` and ``ExecutionListConsumer``: the pages' htmx
  websockets; they push the pages' own partials with ``hx-swap-oob``, rendered
  once per burst of hints rather than once per event.

Each socket shows what its user may see (``access``): a detail route for an
execution that is not theirs is refused like an unknown id, and the list shows
their own executions (an operator's shows all). Every list socket hears every
execution's hints; a plain user's socket re-renders only for its user's
executions, told apart by ``submitters``, a per-process memory of who
submitted which execution (it never changes), read once per execution for all
the sockets here rather than once per socket and hint.
"""

import abc
import asyncio
import logging
import time
from collections import OrderedDict
from urllib.parse import parse_qs

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.http import QueryDict

from executions import access, feeds, list_page, live, presenters, selectors
from executions.ids import ID_MAX
from executions.models import ExecutionState
from executions.renders import SharedRenders

logger = logging.getLogger(__name__)

EVENT_BATCH = 500
# A page re-renders at most this often however fast events arrive; the table keeps the detail.
COALESCE_SECONDS = 0.1
DETAIL_PANELS = (
    "execution-header",
    "execution-progress",
    "execution-steps",
    "execution-history",
    "execution-attempts",
    "execution-error",
    "execution-result",
    "execution-routing",
)


def _query(scope, name: str) -> str | None:
    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[-1] if values else None


def _after(scope) -> int | None:
    """The ``after`` cursor: 0 when absent (from the beginning), None when it is not a valid id."""
    raw = _query(scope, "after")
    if raw is None or raw == "":
        return 0
    if not (raw.isascii() and raw.isdigit()):
        return None
    cursor = int(raw)
    return cursor if cursor <= ID_MAX else None


page_renders = SharedRenders()

# Reads ---------------------------------------------------------------------------------


@database_sync_to_async
def _may_see(user, execution_id: int) -> bool:
    return access.may_see_execution(user, execution_id)


@database_sync_to_async
def _is_operator(user) -> bool:
    return access.is_operator(user)


@database_sync_to_async
def _submitters_of(execution_ids: list[int]) -> dict[int, int | None]:
    return selectors.execution_submitters(execution_ids=execution_ids)


class Submitters:
    """Who submitted which execution, read once per execution for every list socket in this process.

    A plain user's list socket hears every execution's hints and wants only its
    user's: asking the database per socket and hint would cost what rendering did.
    An id already being read waits for that read; other ids asked for meanwhile
    are read together in the next one. A row that is not there is not
    remembered (a later ask reads again).
    """

    def __init__(self, keep: int = 100_000):
        self.keep = keep
        self.reads = 0
        self._known: OrderedDict[int, int | None] = OrderedDict()
        self._wanted: dict[int, asyncio.Future] = {}
        self._reading: dict[int, asyncio.Future] = {}
        self._reader: asyncio.Task | None = None

    async def of(self, execution_id: int) -> int | None:
        """The id of the user who submitted the execution; None for nobody (or no such row)."""
        if execution_id in self._known:
            return self._known[execution_id]
        future = self._wanted.get(execution_id) or self._reading.get(execution_id)
        if future is None:
            future = self._wanted[execution_id] = asyncio.get_running_loop().create_future()
            if self._reader is None or self._reader.done():
                self._reader = asyncio.ensure_future(self._read())
        return await asyncio.shield(future)

    async def _read(self) -> None:
        while self._wanted:
            # Ids asked for while this read is under way wait for it, or for the next one.
            self._reading, self._wanted = self._wanted, {}
            wanted = self._reading
            self.reads += 1
            try:
                found = await _submitters_of(list(wanted))
            except Exception as exc:
                for future in wanted.values():
                    future.set_exception(exc)
                continue
            finally:
                self._reading = {}
            for execution_id, future in wanted.items():
                if execution_id in found:
                    self._known[execution_id] = found[execution_id]
                future.set_result(found.get(execution_id))
            while len(self._known) > self.keep:
                self._known.popitem(last=False)


submitters = Submitters()


@database_sync_to_async
def _detail_push(execution_id: int, after_id: int) -> tuple[str, int]:
    """The page's panels, and its log brought from event ``after_id`` up to the page's last event id:
    new attempts as sections of their own, new lines appended to their attempt's section.

    The log is read only up to the id read first, so every line read has its attempt among the
    state events read after it; what comes later is the next hint's push.
    """
    page = presenters.execution_page(execution_id=execution_id, with_log=False)
    if page is None:
        return "", after_id
    context = {**page, "oob": True}
    parts = [presenters.render_text(f"executions/detail.html#{name}", context) for name in DETAIL_PANELS]
    up_to = page["last_event_id"]
    shown = after_id
    while shown < up_to:
        events = selectors.execution_log_events_after(
            execution_id=execution_id, after_id=after_id, up_to_id=up_to, limit=EVENT_BATCH
        )
        # Attempts that started up to the end of this batch (or the last id, for the last batch) come now.
        reach = up_to if len(events) < EVENT_BATCH else events[-1].pk
        attempts = [attempt for attempt in page["attempts"] if attempt.start_id <= reach]
        groups = presenters.log_append(attempts, events, shown_up_to=shown)
        if groups:
            log = {**context, "log_groups": groups}
            parts.append(presenters.render_text("executions/detail.html#log-append", log))
        shown = reach
        if events:
            after_id = events[-1].pk
    return "".join(parts), max(shown, after_id)


@database_sync_to_async
def _list_push(user, params: QueryDict, shown: list[int] | None, changed: set[int]) -> tuple[list[str], list[int]]:
    """The list page's update: the changed rows, or the whole table body when the rows shown differ.

    The pushed page always matches what a reload of the same URL (filters and
    cursor) would show: when an execution enters or leaves the filtered page,
    the body is re-rendered as a whole; one that does not match never shows.
    Table rows go in a message of their own: the browser parses a message as
    one fragment, and table parts after a ``<nav>`` would lose their tags.
    """
    context = {**list_page.list_context(user, params), "oob": True}
    executions = context["executions"]
    ids = [execution.pk for execution in executions]
    messages = [
        presenters.render_text("executions/list.html#list-summary", context)
        + presenters.render_text("executions/list.html#execution-pager", context)
    ]
    if ids != shown:
        messages.append(presenters.render_text("executions/list.html#execution-rows", context))
    else:
        row = "executions/list.html#execution-row"
        rows = [presenters.render_text(row, {**context, "execution": e}) for e in executions if e.pk in changed]
        if rows:
            messages.append("".join(rows))
    return messages, ids


# Consumers -------------------------------------------------------------------------------


class LiveConsumer(AsyncWebsocketConsumer, abc.ABC):
    """Logged-in users only; subscribed to ``live_groups`` and relayed while connected."""

    live_groups: tuple[str, ...] = ()
    watching = False

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated or not await self.prepare():
            await self.close()  # before accept: the handshake is refused
            return
        # Subscribe before the first read, so nothing committed in between is missed.
        for group in self.live_groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await live.watch()
        self.watching = True
        await self.accept()
        await self.catch_up()

    async def dispatch(self, message):
        # Channels closes stale database connections before every handler, on the database
        # thread: with 200 sockets on one execution, 200 thread hops per hint, a third of the web
        # process's CPU (py-spy). Our handlers reach the database only through
        # database_sync_to_async, which closes stale connections on that thread itself.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def disconnect(self, code):
        for group in self.live_groups:
            await self.channel_layer.group_discard(group, self.channel_name)
        if self.watching:
            self.watching = False
            await live.unwatch()

    @abc.abstractmethod
    async def prepare(self) -> bool:
        """Read the URL; False refuses the connection."""

    @abc.abstractmethod
    async def catch_up(self) -> None:
        """Send what the client has not seen yet."""


class ExecutionEventsConsumer(LiveConsumer):
    """Every event of one execution, once each, in id order: first those after ``?after=``, then live.

    The socket follows the execution's feed, which alone hears the execution's hints in
    this process and reads and encodes each new event once for every socket on it.
    """

    feed: feeds.ExecutionFeed | None = None

    async def prepare(self) -> bool:
        self.execution_id = int(self.scope["url_route"]["kwargs"]["execution_id"])
        self.cursor = _after(self.scope)
        return self.cursor is not None and await _may_see(self.scope["user"], self.execution_id)

    async def catch_up(self) -> None:
        self.feed = await feeds.feed_join(self.execution_id)
        await self.feed.follow(self)

    async def send_frame(self, event_id: int, text: str) -> None:
        await self.send(text_data=text)
        self.cursor = event_id

    async def disconnect(self, code):
        if self.feed is not None:
            feed, self.feed = self.feed, None
            feed.unfollow(self)
            await feeds.feed_leave(feed)
        await super().disconnect(code)


class HtmlLiveConsumer(LiveConsumer):
    """Pushes rendered fragments; a burst of hints becomes one render after ``COALESCE_SECONDS``."""

    coalesce_seconds = COALESCE_SECONDS
    _flusher: asyncio.Task | None = None
    _dirty = False
    hinted_at = 0.0  # time.monotonic() of the newest change this socket was told of: a render must start later

    async def catch_up(self) -> None:
        self.hinted_at = time.monotonic()  # subscribed already: what was committed before now must show
        await self.push()

    async def execution_changed(self, message) -> None:
        self.hinted_at = time.monotonic()
        self._dirty = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())

    async def _flush(self) -> None:
        # A hint arriving while rendering sets _dirty again and earns one more render.
        while self._dirty:
            await asyncio.sleep(self.coalesce_seconds)
            self._dirty = False
            try:
                await self.push()
            except Exception:
                logger.exception("Could not push a live update on %s", self.scope.get("path"))

    async def push(self) -> None:
        for html in await self.render():
            await self.send(text_data=html)

    @abc.abstractmethod
    async def render(self) -> list[str]:
        """The messages that bring the page up to date; each is one HTML fragment of OOB elements."""

    async def disconnect(self, code):
        if self._flusher is not None:
            self._flusher.cancel()
        await super().disconnect(code)


class ExecutionPageConsumer(HtmlLiveConsumer):
    """The detail page: its panels replaced, its log appended after ``?after=`` (the last event rendered)."""

    async def prepare(self) -> bool:
        self.execution_id = int(self.scope["url_route"]["kwargs"]["execution_id"])
        self.cursor = _after(self.scope)
        self.live_groups = (live.execution_group(self.execution_id),)
        return self.cursor is not None and await _may_see(self.scope["user"], self.execution_id)

    async def render(self) -> list[str]:
        # Every socket on the page at the same cursor wants the same HTML: rendered once for all of them.
        html, self.cursor = await page_renders.get(
            (self.execution_id, self.cursor), self.hinted_at, lambda: _detail_push(self.execution_id, self.cursor)
        )
        return [html] if html else []


class RefusedConsumer(AsyncWebsocketConsumer):
    """Any path no route matches, an id no row can have included: the handshake is refused."""

    async def connect(self):
        await self.close()


class ExecutionListConsumer(HtmlLiveConsumer):
    """The executions list the user may see, with the page's filters and cursor (its query string):
    rows, state counts and paging links."""

    async def prepare(self) -> bool:
        self.params = QueryDict(self.scope.get("query_string", b"").decode("latin-1"))
        state = self.params.get("state") or None
        if state is not None and state not in ExecutionState.values:
            return False
        self.shown: list[int] | None = None
        self.changed: set[int] = set()
        self.live_groups = (live.ALL_EXECUTIONS_GROUP,)
        # Asked once: a user made or unmade an operator sees the change on the next connect.
        self.sees_all = await _is_operator(self.scope["user"])
        return True

    async def execution_changed(self, message) -> None:
        execution_id = message.get("execution")
        if not self.sees_all and execution_id is not None and not await self._concerns_user(execution_id):
            return
        self.changed.add(execution_id)
        await super().execution_changed(message)

    async def _concerns_user(self, execution_id: int) -> bool:
        if self.shown is not None and execution_id in self.shown:
            return True
        try:
            return await submitters.of(execution_id) == self.scope["user"].pk
        except Exception:
            logger.warning(
                "Could not tell whose execution %s is; updating the list anyway", execution_id, exc_info=True
            )
            return True

    async def render(self) -> list[str]:
        changed, self.changed = self.changed, set()
        messages, self.shown = await _list_push(self.scope["user"], self.params, self.shown, changed)
        return messages
