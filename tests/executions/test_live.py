"""The live hint sender: a commit notes an execution id, one thread per process hints the channel layer.

The layer is channels' own in-memory layer, extended only to note (for the test
thread) which executions it was asked to hint, and, where a test needs the
sender busy, to hold the sender inside a send until the test opens a gate.
"""

import logging
import sqlite3
import threading

from channels.layers import InMemoryChannelLayer

from executions.live import CommitCounter, HintSender

WAIT = 10  # a safety net for a broken sender, never reached when it works


class WatchedLayer(InMemoryChannelLayer):
    """The in-memory layer, noting every execution it hints; ``hold()`` keeps the next send waiting."""

    def __init__(self):
        super().__init__()
        self.hinted: set[int] = set()
        self.events: dict[int, int | None] = {}  # the event each execution's last hint named
        self._arrived = threading.Condition()
        self._gate: threading.Event | None = None
        self.holding = threading.Event()

    def hold(self) -> None:
        self._gate = threading.Event()

    def release(self) -> None:
        self._gate.set()

    async def group_send(self, group, message):
        if self._gate is not None and not self._gate.is_set():
            self.holding.set()
            self._gate.wait(WAIT)  # blocks the sender's own thread, as a stalled Redis would
        await super().group_send(group, message)
        with self._arrived:
            self.events[message["execution"]] = message["event"]
            self.hinted.add(message["execution"])
            self._arrived.notify_all()

    def wait_for(self, *execution_ids: int) -> bool:
        with self._arrived:
            return self._arrived.wait_for(lambda: self.hinted.issuperset(execution_ids), WAIT)


class FailingOnce:
    """A layer factory that raises the first time it is asked, as an unreachable layer would, then works."""

    def __init__(self, layer):
        self.layer = layer
        self.failed = threading.Event()

    def __call__(self):
        if not self.failed.is_set():
            self.failed.set()
            raise ConnectionError("channel layer not reachable")
        return self.layer


def test_hints_arrive_once_each():
    layer = WatchedLayer()
    sender = HintSender(layer=lambda: layer)

    for execution_id in (1, 2, 1, 3):
        sender.send(execution_id)

    assert layer.wait_for(1, 2, 3)


def test_a_layer_that_cannot_be_had_once_does_not_stop_later_hints(caplog):
    layer = WatchedLayer()
    factory = FailingOnce(layer)
    sender = HintSender(layer=factory)

    sender.send(1)
    assert factory.failed.wait(WAIT)
    sender.send(2)
    sender.send(3)

    assert layer.wait_for(2, 3), f"hints after the failure never arrived; got {layer.hinted}"
    assert "Could not push live hints" in caplog.text


def test_a_layer_that_fails_to_send_does_not_stop_later_hints():
    class BrokenOnce(WatchedLayer):
        broke = threading.Event()

        async def group_send(self, group, message):
            if not self.broke.is_set():
                self.broke.set()
                raise ConnectionError("connection reset")
            await super().group_send(group, message)

    layer = BrokenOnce()
    sender = HintSender(layer=lambda: layer)

    sender.send(1)
    assert layer.broke.wait(WAIT)
    sender.send(2)

    assert layer.wait_for(2)


def test_a_flood_while_the_layer_is_stalled_keeps_at_most_the_limit_waiting(caplog):
    layer = WatchedLayer()
    layer.hold()
    sender = HintSender(layer=lambda: layer, limit=100, log_interval=3600)
    sender.send(0)
    assert layer.holding.wait(WAIT), "the sender never reached the layer"

    with caplog.at_level(logging.WARNING, logger="executions.live"):
        for execution_id in range(1, 100_001):
            sender.send(execution_id)

    assert sender.pending == 100
    assert sender.dropped == 100_000 - 100
    drop_logs = [record for record in caplog.records if "Dropped" in record.getMessage()]
    assert len(drop_logs) == 1, "a flood must not flood the log too"

    layer.release()
    assert layer.wait_for(0, *range(1, 101))
    sender.send(500_000)
    assert layer.wait_for(500_000), "the sender did not recover after the flood"
    assert layer.hinted.isdisjoint(range(101, 100_001))


def test_repeated_hints_for_the_same_executions_wait_once_and_are_never_dropped():
    layer = WatchedLayer()
    layer.hold()
    sender = HintSender(layer=lambda: layer, limit=10)
    sender.send(0)
    assert layer.holding.wait(WAIT)

    for round_number in range(10_000):
        sender.send(round_number % 5)

    assert (sender.pending, sender.dropped) == (5, 0)
    layer.release()
    assert layer.wait_for(0, 1, 2, 3, 4)


def test_hints_waiting_together_name_the_newest_event_or_none_if_one_did_not_say():
    layer = WatchedLayer()
    layer.hold()
    sender = HintSender(layer=lambda: layer)
    sender.send(0, 1)
    assert layer.holding.wait(WAIT)

    for event_id in (10, 12, 11):
        sender.send(1, event_id)
    for event_id in (5, None, 7):
        sender.send(2, event_id)
    layer.release()

    assert layer.wait_for(0, 1, 2)
    assert layer.events == {0: 1, 1: 12, 2: None}


def test_the_commit_counter_moves_when_another_connection_commits(tmp_path):
    path = tmp_path / "counted.sqlite3"
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE event (id INTEGER PRIMARY KEY)")
    counter = CommitCounter(str(path))
    counter.moved()  # the first look has nothing to compare with

    assert not counter.moved()
    writer.execute("INSERT INTO event DEFAULT VALUES")
    assert counter.moved()
    assert not counter.moved()
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO event DEFAULT VALUES")
    assert not counter.moved(), "nothing is committed yet"
    writer.execute("COMMIT")
    assert counter.moved()
    counter.close()
    writer.close()


def test_a_group_named_by_a_layer_above_is_hinted_by_name_once_while_it_waits():
    class GroupsLayer(InMemoryChannelLayer):
        """Notes each (group, message); holds every send until the test opens the gate."""

        def __init__(self):
            super().__init__()
            self.sent: list[tuple[str, dict]] = []
            self.arrived = threading.Condition()
            self.gate, self.holding = threading.Event(), threading.Event()

        async def group_send(self, group, message):
            self.holding.set()
            self.gate.wait(WAIT)
            with self.arrived:
                self.sent.append((group, message))
                self.arrived.notify_all()

    layer = GroupsLayer()
    sender = HintSender(layer=lambda: layer)
    sender.send("workflow.1")
    assert layer.holding.wait(WAIT)

    for _ in range(3):
        sender.send("workflow.7")
    layer.gate.set()

    with layer.arrived:
        assert layer.arrived.wait_for(lambda: len(layer.sent) >= 2, WAIT)
    assert layer.sent == [
        ("workflow.1", {"type": "group.changed", "group": "workflow.1"}),
        ("workflow.7", {"type": "group.changed", "group": "workflow.7"}),
    ]
