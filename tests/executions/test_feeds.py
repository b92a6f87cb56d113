"""Many sockets on one execution: the execution's feed reads each new event once and pushes it to all.

Through the real ASGI application and the real writer of a running execution's
log (the progress tracker), as in test_consumers: on the embedded default the
web process's relay notices the committed events and hints the feed; with
Redis the writer hints it on commit.
"""

import asyncio
import threading

import pytest
from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.layers import InMemoryChannelLayer, channel_layers, get_channel_layer

from executions import feeds, live
from executions.models import Execution, ExecutionEvent
from executions.progress import ProgressTracker
from executions.services import execution_submit
from executions.state import transition
from tests.executions.test_consumers import event_ids, receive_events, socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_live")]


@pytest.fixture
def execution(make_agent) -> Execution:
    """A running execution: its tracker may write its log."""
    execution = execution_submit(agent=make_agent("echo"), input_data={"q": 1}, name="Watched")
    transition(execution.pk, "PREPARING", expected=["QUEUED"])
    transition(execution.pk, "RUNNING", expected=["PREPARING"])
    return execution


def write_log(execution_id: int, line: str) -> int:
    """What a worker's tracker does with a log line: one committed event, hinted on commit with a shared layer."""
    tracker = ProgressTracker(execution_id)
    tracker.log(line)
    assert tracker.flush()
    return ExecutionEvent.objects.filter(execution_id=execution_id).latest("id").pk


add_log = database_sync_to_async(write_log)


async def connect(path: str, session: str):
    communicator = socket(path, session)
    assert (await communicator.connect())[0], path
    return communicator


async def catch_up(communicator, execution_id: int, after: int = 0) -> None:
    await receive_events(communicator, len([i for i in await event_ids(execution_id) if i > after]))


async def test_every_socket_gets_every_event_once_in_order_whenever_it_joined(execution, session):
    path = f"/ws/executions/{execution.pk}/"
    early = [await connect(path + "?after=0", session) for _ in range(5)]
    for communicator in early:
        await catch_up(communicator, execution.pk)
    seen = (await event_ids(execution.pk))[-1]
    for number in range(10):
        await add_log(execution.pk, f"line {number}")
    # One joins mid-stream from the start, one from an event in the middle.
    middle = (await event_ids(execution.pk))[-5]
    from_start = await connect(path + "?after=0", session)
    from_middle = await connect(path + f"?after={middle}", session)
    for number in range(10, 20):
        await add_log(execution.pk, f"line {number}")

    ids = await event_ids(execution.pk)
    after = {communicator: seen for communicator in early} | {from_start: 0, from_middle: middle}
    for communicator, cursor in after.items():
        expected = [i for i in ids if i > cursor]
        assert [event["id"] for event in await receive_events(communicator, len(expected))] == expected
    for communicator in after:
        assert await communicator.receive_nothing(0.2)
        await communicator.disconnect()


async def test_a_new_event_is_read_once_for_all_the_sockets_on_it(execution, session):
    path = f"/ws/executions/{execution.pk}/?after=0"
    sockets = [await connect(path, session) for _ in range(20)]
    for communicator in sockets:
        await catch_up(communicator, execution.pk)
    feed = feeds.feeds[execution.pk]
    reads = feed.reads_started

    event_id = await add_log(execution.pk, "for everyone")
    for communicator in sockets:
        assert [e["id"] for e in await receive_events(communicator, 1)] == [event_id]

    assert feed.reads_started - reads == 1
    # A hint about an event the feed already read costs nothing and sends nothing.
    await get_channel_layer().group_send(
        live.execution_group(execution.pk), {"type": "execution.changed", "execution": execution.pk, "event": event_id}
    )
    for communicator in sockets:
        assert await communicator.receive_nothing(0.05)
        await communicator.disconnect()
    assert feed.reads_started - reads == 1
    assert execution.pk not in feeds.feeds, "the feed outlived its last socket"


@pytest.mark.parametrize("limit", [("KEEP", 3), ("KEEP_CHARS", 600)], ids=["frames", "characters"])
async def test_a_socket_older_than_the_feed_remembers_reads_the_table(execution, session, monkeypatch, limit):
    monkeypatch.setattr(feeds.ExecutionFeed, *limit)
    watcher = await connect(f"/ws/executions/{execution.pk}/?after=0", session)
    await catch_up(watcher, execution.pk)
    first = (await event_ids(execution.pk))[0]
    for number in range(8):
        await add_log(execution.pk, f"line {number}")
    await receive_events(watcher, 8)
    assert feeds.feeds[execution.pk].base > first + 3, "the feed should have forgotten the oldest events"

    late = await connect(f"/ws/executions/{execution.pk}/?after={first}", session)
    await add_log(execution.pk, "after it joined")
    ids = await event_ids(execution.pk)

    assert [event["id"] for event in await receive_events(late, len(ids) - 1)] == ids[1:]
    assert [event["id"] for event in await receive_events(watcher, 1)] == ids[-1:]
    for communicator in (watcher, late):
        assert await communicator.receive_nothing(0.2)
        await communicator.disconnect()


async def test_a_socket_that_does_not_read_holds_up_nobody(execution, session):
    path = f"/ws/executions/{execution.pk}/?after=0"
    stalled = await connect(path, session)  # reads nothing until the end
    reader = await connect(path, session)
    await catch_up(reader, execution.pk)
    seen = len(await event_ids(execution.pk))

    for number in range(30):
        await add_log(execution.pk, f"line {number}")
    ids = await event_ids(execution.pk)

    assert [event["id"] for event in await receive_events(reader, 30)] == ids[seen:]
    assert [event["id"] for event in await receive_events(stalled, len(ids))] == ids
    for communicator in (stalled, reader):
        await communicator.disconnect()


async def test_live_events_do_not_wait_for_the_database_thread(execution, session):
    watcher = await connect(f"/ws/executions/{execution.pk}/?after=0", session)
    await catch_up(watcher, execution.pk)
    # Hold the process's database thread, as a long replay from an old ?after= would.
    gate = threading.Event()
    busy = asyncio.ensure_future(sync_to_async(gate.wait)(30))
    try:
        event_id = await asyncio.to_thread(write_log, execution.pk, "while the database thread is busy")

        assert [event["id"] for event in await receive_events(watcher, 1)] == [event_id]
        assert not busy.done()
    finally:
        gate.set()
        await busy
    await watcher.disconnect()


async def test_sockets_leaving_mid_stream_do_not_disturb_the_others(execution, session):
    path = f"/ws/executions/{execution.pk}/?after=0"
    sockets = [await connect(path, session) for _ in range(6)]
    for communicator in sockets:
        await catch_up(communicator, execution.pk)

    await add_log(execution.pk, "one")
    for communicator in sockets[:3]:
        await communicator.disconnect()
    await asyncio.gather(*(receive_events(communicator, 1) for communicator in sockets[3:]))
    await add_log(execution.pk, "two")

    ids = await event_ids(execution.pk)
    for communicator in sockets[3:]:
        assert [event["id"] for event in await receive_events(communicator, 1)] == ids[-1:]
        await communicator.disconnect()
    assert execution.pk not in feeds.feeds


class LayerRestartingOnce(InMemoryChannelLayer):
    """The in-memory layer, except that the next receive on the execution's group fails as a Redis restart
    would: the group's members are forgotten and the listener's connection breaks."""

    def __init__(self, group: str):
        super().__init__()
        self.group = group
        self.restart = False
        self.restarted = asyncio.Event()

    async def receive(self, channel):
        if self.restart and channel in self.groups.get(self.group, {}):
            self.restart = False
            self.groups.pop(self.group)
            self.restarted.set()
            raise ConnectionError("Connection closed by server.")
        return await super().receive(channel)


async def test_the_feed_comes_back_after_the_layer_restarts(execution, session, caplog, settings):
    settings.SYMPHONY_EVENT_RELAY = True  # the layer stands in for Redis here: hints come from this loop's relay
    layer = channel_layers.backends["default"] = LayerRestartingOnce(live.execution_group(execution.pk))
    watcher = await connect(f"/ws/executions/{execution.pk}/?after=0", session)
    await catch_up(watcher, execution.pk)

    layer.restart = True  # takes effect when the feed next asks the layer
    first = await add_log(execution.pk, "before the restart")
    assert [event["id"] for event in await receive_events(watcher, 1)] == [first]
    await asyncio.wait_for(layer.restarted.wait(), 5)
    second = await add_log(execution.pk, "while the layer was down")

    assert [event["id"] for event in await receive_events(watcher, 1)] == [second]
    third = await add_log(execution.pk, "after the restart")
    assert [event["id"] for event in await receive_events(watcher, 1)] == [third]
    assert "Lost the hints of execution" in caplog.text
    await watcher.disconnect()
