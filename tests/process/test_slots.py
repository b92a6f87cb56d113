"""Many executions per worker process: 300 async agents on two processes of 50 slots each,
the worker group SIGKILLed three times while they run.

Nothing is lost (all 300 complete), nothing ends twice, no execution's agent
ever runs twice at the same time (the agents' own marks), and the per-agent
and per-batch limits are never exceeded (from the event history).
"""

import os
import signal
import time
from collections import defaultdict

import pytest

from tests.process.conftest import wait_until
from tests.process.gates import most_at_once
from tests.process.test_worker_killed import final_events

pytestmark = pytest.mark.process

PER_KIND = 100  # executions of each kind: capped by their agent, in a batch, free
AGENT_LIMIT = 30
BATCH_LIMIT = 40
SLOTS = 50
KILLS = 3

SUBMIT = """
from django.db import transaction
from executions.services import concurrency_group_create, execution_release, execution_submit
from routing.models import AgentConfig
path = {{"path": "tests.agents.async_naps"}}
capped = AgentConfig.objects.create(name="capped", settings=path, max_concurrency={agent_limit})
free = AgentConfig.objects.create(name="free", settings=path)
batch = concurrency_group_create(name="batch", max_concurrent={batch_limit})
data = {{"seconds": 2, "marks": {marks!r}}}
held = {{
    "capped": [execution_submit(agent=capped, input_data=data, hold=True, max_attempts=10) for _ in range({n})],
    "batch": [
        execution_submit(agent=free, input_data=data, hold=True, max_attempts=10, concurrency_group=batch)
        for _ in range({n})
    ],
    "free": [execution_submit(agent=free, input_data=data, hold=True, max_attempts=10) for _ in range({n})],
}}
with transaction.atomic():
    for executions in held.values():
        for execution in executions:
            execution_release(execution=execution)
for kind, executions in held.items():
    print(kind, ",".join(str(execution.pk) for execution in executions))
"""


def agent_runs(marks, kills: list[float]) -> dict[int, list[tuple[float, float]]]:
    """Per execution, each run of its agent as (started, ended); a run cut short by a SIGKILL ends at the kill."""
    started, spans = {}, defaultdict(list)
    for line in marks.read_text().splitlines():
        what, execution, attempt, pid, at = line.split()
        key = (int(execution), int(attempt), int(pid))
        if what == "start":
            started[key] = float(at)
        else:
            spans[key[0]].append((started.pop(key), float(at)))
    for (execution, _, _), at in started.items():
        killed_at = min((kill for kill in kills if kill > at), default=None)
        assert killed_at is not None, f"execution {execution}: a run started at {at} never ended"
        spans[execution].append((at, killed_at))
    return spans


def test_slots_survive_three_kills_and_keep_every_limit(symphony, tmp_path):
    marks = tmp_path / "marks"
    symphony.env.update({"SYMPHONY_WORKERS": "2", "SYMPHONY_SLOTS": str(SLOTS)})
    dispatcher = symphony.start_dispatcher()
    printed = symphony.manage(
        "shell", "-c", SUBMIT.format(n=PER_KIND, agent_limit=AGENT_LIMIT, batch_limit=BATCH_LIMIT, marks=str(marks))
    ).stdout
    ids = {
        kind: [int(pk) for pk in pks.split(",")]
        for kind, pks in (line.split() for line in printed.splitlines() if line.startswith(("capped", "batch", "free")))
    }
    everything = [pk for pks in ids.values() for pk in pks]
    assert len(everything) == 3 * PER_KIND

    def running() -> int:
        return sum(row["state"] == "RUNNING" for row in symphony.db.executions().values())

    def all_completed():
        rows = symphony.db.executions()
        return rows if all(rows[pk]["state"] == "COMPLETED" for pk in everything) else None

    kills = []
    for _ in range(KILLS):
        cluster = symphony.start_worker()
        # Agents are mid-run (each naps 2 s): the kill cuts them short.
        alive = lambda: symphony.expect_running(dispatcher)  # noqa: E731
        wait_until(lambda: running() >= 20, timeout=90, what="agents running", alive=alive)
        os.killpg(cluster.pgid, signal.SIGKILL)
        kills.append(time.time())
        cluster.popen.wait(10)
        wait_until(lambda c=cluster: not c.group_alive(), timeout=10, what="the killed cluster's processes gone")

    last = symphony.start_worker()
    rows = wait_until(
        all_completed,
        timeout=240,
        what="every execution completed",
        interval=0.5,
        alive=lambda: symphony.expect_running(dispatcher, last),
    )

    requeued = 0
    for pk in everything:
        states = [event for event in symphony.db.events(pk) if event["kind"] == "state"]
        history = [(event["from_state"], event["to_state"]) for event in states]
        for before, after in zip(states, states[1:], strict=False):
            assert after["from_state"] == before["to_state"], f"execution {pk}: broken history {history}"
        ends = final_events(states)
        assert len(ends) == 1 and ends[0] is states[-1], f"execution {pk}: terminal events {history}"
        assert rows[pk]["result"] == {"slept": 2}
        requeued += rows[pk]["attempt"] > 1
    assert requeued, "no kill cut an agent short"

    assert most_at_once(symphony.db, ids["capped"]) <= AGENT_LIMIT
    assert most_at_once(symphony.db, ids["batch"]) <= BATCH_LIMIT
    for execution, spans in agent_runs(marks, kills).items():
        spans.sort()
        for before, after in zip(spans, spans[1:], strict=False):
            assert before[1] <= after[0], f"execution {execution}: two runs at once {spans}"
