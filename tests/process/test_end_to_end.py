"""The whole install, as a user meets it: daphne, the worker cluster and the dispatcher
as separate processes; log in over HTTP, submit from the CLI, watch over the websocket.
"""

import json
import time

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from tests.process.conftest import wait_until

pytestmark = pytest.mark.process

EVENT_KINDS = {"state", "progress", "log"}
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
HAPPY_PATH = [(None, "QUEUED"), ("QUEUED", "PREPARING"), ("PREPARING", "RUNNING"), ("RUNNING", "COMPLETED")]
TEXT = (
    "Symphony runs tasks with agents. Every run is watched live! Is it readable? "
    "The workers run the agents, and the agents report their progress."
)


class EventSocket:
    """A websocket on one execution's events; keeps every event object it received, in order."""

    def __init__(self, stack, session: str, execution_id: int, after: int | None = None):
        query = "" if after is None else f"?after={after}"
        self.url = f"ws://127.0.0.1:{stack.port}/ws/executions/{execution_id}/{query}"
        self.ws = connect(
            self.url,
            additional_headers={"Cookie": f"sessionid={session}"},
            origin=stack.base_url,
            proxy=None,
            open_timeout=10,
            legacy=True,  # used directly, closed by close()
        )
        self.events: list[dict] = []
        self.other: list = []

    def _take(self, timeout: float) -> None:
        message = json.loads(self.ws.recv(timeout=timeout))
        for item in message if isinstance(message, list) else [message]:
            if isinstance(item, dict) and item.get("kind") in EVENT_KINDS and "id" in item:
                self.events.append(item)
            else:
                self.other.append(item)

    def receive_until(self, done, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while not done(self.events):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{self.url}: timed out after {timeout}s; received {self.events} {self.other}")
            try:
                self._take(remaining)
            except TimeoutError:
                continue
        return self.events

    def expect_quiet(self, seconds: float) -> None:
        """Nothing more arrives within ``seconds`` (a bounded check for duplicates or extras)."""
        try:
            self._take(seconds)
        except TimeoutError:
            return
        raise AssertionError(f"{self.url}: unexpected message after the expected events: {self.events[-1]}")

    def close(self) -> None:
        self.ws.close()


def finished(events: list[dict]) -> bool:
    return any(event["kind"] == "state" and event["to_state"] in FINISHED for event in events)


def transitions(events: list[dict]) -> list[tuple]:
    return [(event["from_state"], event["to_state"]) for event in events if event["kind"] == "state"]


def check_stream(events: list[dict], execution_id: int, db) -> None:
    """Events arrive once each, in id order, all for this execution, and match the table."""
    ids = [event["id"] for event in events]
    assert ids == sorted(set(ids)), f"events out of order or repeated: {ids}"
    assert {event["execution"] for event in events} == {execution_id}
    stored = db.events(execution_id)
    assert ids == [row["id"] for row in stored], "the stream differs from the event table"
    for event, row in zip(events, stored, strict=True):
        assert event["kind"] == row["kind"] and event["data"] == row["data"], (event, row)


def test_login_submit_watch_replay_and_wait(symphony):
    symphony.start_web()
    symphony.start_worker()
    symphony.start_dispatcher()
    session = symphony.login()

    slow_id = symphony.submit("slow", {"seconds": 2, "steps": 4})

    # Live: connect while the slow agent works and see its events as they happen.
    seen_before = symphony.db.value("SELECT MAX(id) FROM executions_executionevent WHERE execution_id = %s", (slow_id,))
    live = EventSocket(symphony, session, slow_id, after=0)
    try:
        events = live.receive_until(finished, timeout=60)
    finally:
        live.close()
    assert transitions(events) == HAPPY_PATH, transitions(events)
    progress = [event for event in events if event["kind"] == "progress"]
    assert progress, f"no progress events: {events}"
    percents = [event["data"]["percent"] for event in progress]
    assert percents == sorted(percents), percents
    steps = [step for event in progress for step in event["data"]["new_steps"]]
    assert steps == [f"Step {n} of 4" for n in range(1, 5)], steps
    assert any(event["kind"] == "log" for event in events)
    produced_live = [event for event in events if event["id"] > seen_before]
    assert len(produced_live) >= 3, f"only {len(produced_live)} events arrived live (after #{seen_before})"
    check_stream(events, slow_id, symphony.db)

    # Replay: a client that saw up to RUNNING gets exactly the later events, once.
    running = next(event for event in events if event["kind"] == "state" and event["to_state"] == "RUNNING")
    expected = [event for event in events if event["id"] > running["id"]]
    replay = EventSocket(symphony, session, slow_id, after=running["id"])
    try:
        got = replay.receive_until(lambda got: len(got) >= len(expected), timeout=20)
        replay.expect_quiet(1.0)
    finally:
        replay.close()
    assert [event["id"] for event in got] == [event["id"] for event in expected]
    assert got == expected

    # A fast agent: its whole history arrives, with progress and a stored result.
    stats_id = symphony.submit("text-stats", {"text": TEXT})
    stream = EventSocket(symphony, session, stats_id, after=0)
    try:
        events = stream.receive_until(finished, timeout=60)
    finally:
        stream.close()
    assert transitions(events) == HAPPY_PATH, transitions(events)
    progress = [event for event in events if event["kind"] == "progress"]
    assert progress and progress[-1]["data"]["step"] == "Summarising", progress
    check_stream(events, stats_id, symphony.db)
    waited = symphony.manage("symphony", "wait", str(stats_id), timeout=60)
    result = json.loads(waited.stdout[waited.stdout.index("{") :])
    assert result["words"] == 24 and result["sentences"] == 4, result

    # The websocket is for logged-in users, from this site's pages only.
    for headers, origin in (({}, symphony.base_url), ({"Cookie": f"sessionid={session}"}, "http://evil.example")):
        url = f"ws://127.0.0.1:{symphony.port}/ws/executions/{stats_id}/?after=0"
        try:
            ws = connect(url, additional_headers=headers, origin=origin, proxy=None, open_timeout=10)
        except InvalidStatus:
            continue  # refused at the handshake
        who = f"{'a logged-in' if headers else 'an anonymous'} client from {origin}"
        with ws:
            try:
                message = ws.recv(timeout=5)
            except ConnectionClosed:
                continue  # accepted, then closed
            except TimeoutError:
                raise AssertionError(f"{url} stayed open for {who}") from None
            raise AssertionError(f"{url} sent {message!r} to {who}")

    # The CLI's --wait: exit 0 and the result on success...
    ok = symphony.manage(
        "symphony", "submit", "--agent", "text-stats", "--input", json.dumps({"text": TEXT}), "--wait", timeout=60
    )
    ok_id = int(ok.stdout.splitlines()[0])
    assert '"words": 24' in ok.stdout, ok.stdout
    assert symphony.db.value("SELECT state FROM executions_execution WHERE id = %s", (ok_id,)) == "COMPLETED"

    # ...and a non-zero exit with the error when the agent fails for good.
    failed = symphony.manage(
        "symphony",
        "submit",
        "--agent",
        "flaky",
        "--input",
        '{"fail_attempts": 99}',
        "--max-attempts",
        "1",
        "--wait",
        timeout=60,
        check=False,
    )
    assert failed.returncode != 0, failed.stdout
    assert "FAILED" in failed.stderr and "DemoAgentError" in failed.stderr, failed.stderr
    assert "Attempt 1 fails on purpose" in failed.stderr, failed.stderr
    failed_id = int(failed.stdout.splitlines()[0])
    row = symphony.db.executions()[failed_id]
    assert (row["state"], row["attempt"], row["error"]["type"]) == ("FAILED", 1, "routing.agents.demo.DemoAgentError")

    # Nothing is left behind: no execution is still queued or running.
    wait_until(
        lambda: all(row["state"] in FINISHED for row in symphony.db.executions().values()),
        timeout=10,
        what="every execution finished",
    )
    symphony.expect_running()
