"""Kill the whole worker cluster mid-run: every execution still ends exactly once.

The executions the killed workers were running lose their lease; the dispatcher's
reaper puts them back in the queue as attempt 2 and a new cluster finishes them.
The wake-ups the dead cluster had prefetched are lost with it; the ones still
QUEUED stay in the table, and the dispatcher wakes the new cluster for them.
"""

import os
import signal
import subprocess

import pytest

from tests.process.conftest import PYTHON, ROOT, wait_until

pytestmark = pytest.mark.process

FINAL = {"COMPLETED", "CANCELLED", "TIMED_OUT"}
ACTIVE = {"PREPARING", "RUNNING"}
COUNT = 6
SLOW_INPUT = '{"seconds": 4, "steps": 8}'


def final_events(state_events: list[dict]) -> list[dict]:
    """The events that ended the execution: a final state, or FAILED not followed by a retry."""
    ends = []
    for index, event in enumerate(state_events):
        if event["to_state"] in FINAL:
            ends.append(event)
        elif event["to_state"] == "FAILED" and not any(
            later["to_state"] == "QUEUED" for later in state_events[index + 1 :]
        ):
            ends.append(event)
    return ends


def test_killing_the_worker_group_loses_nothing(symphony):
    dispatcher = symphony.start_dispatcher()
    first_cluster = symphony.start_worker()

    # Submit concurrently: six CLI processes at once.
    command = [
        PYTHON,
        "manage.py",
        "symphony",
        "submit",
        "--agent",
        "slow",
        "--input",
        SLOW_INPUT,
        "--max-attempts",
        "3",
    ]
    submits = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=symphony.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(COUNT)
    ]
    ids = []
    for submit in submits:
        out, err = submit.communicate(timeout=60)
        assert submit.returncode == 0, f"submit failed:\n{out}\n{err}"
        ids.append(int(out.strip().splitlines()[0]))
    assert len(set(ids)) == COUNT

    def running():
        rows = symphony.db.executions()
        busy = [pk for pk, row in rows.items() if row["state"] == "RUNNING"]
        return busy if len(busy) >= 2 else None

    wait_until(running, timeout=30, what="both workers RUNNING an execution", alive=lambda: symphony.expect_running())

    os.killpg(first_cluster.pgid, signal.SIGKILL)
    first_cluster.popen.wait(10)
    wait_until(lambda: not first_cluster.group_alive(), timeout=10, what="every process of the killed cluster gone")

    at_kill = symphony.db.executions()
    lost = {pk for pk, row in at_kill.items() if row["state"] in ACTIVE}
    assert lost, f"nothing was running when the cluster was killed: {at_kill}"
    # (one that finished just before the kill is fine: it simply has attempt 1 and no requeue)

    second_cluster = symphony.start_worker()

    def all_finished():
        rows = symphony.db.executions()
        return rows if all(row["state"] in FINAL | {"FAILED"} for row in rows.values()) else None

    rows = wait_until(
        all_finished,
        timeout=90,
        what=f"all {COUNT} executions finished",
        alive=lambda: symphony.expect_running(dispatcher, second_cluster),
        interval=0.2,
    )

    requeued_by_reaper = set()
    for pk in ids:
        row = rows[pk]
        states = [event for event in symphony.db.events(pk) if event["kind"] == "state"]
        history = [(event["from_state"], event["to_state"]) for event in states]
        assert row["state"] == "COMPLETED", f"execution {pk} ended {row['state']}: {history} error={row['error']}"
        assert row["result"] == {"steps": 8, "seconds": 4.0}, f"execution {pk}: {row['result']}"
        assert row["lease_owner"] == "" and row["lease_expires_at"] is None, f"execution {pk} still leased"

        # One unbroken chain of transitions from the submit to the end...
        assert history[0] == ("", "QUEUED"), history
        for before, after in zip(states, states[1:], strict=False):
            assert after["from_state"] == before["to_state"], f"execution {pk}: broken history {history}"
        # ...that ends exactly once.
        ends = final_events(states)
        assert len(ends) == 1 and ends[0] is states[-1], f"execution {pk}: terminal events {history}"

        requeues = [event for event in states if event["to_state"] == "QUEUED" and event["from_state"] in ACTIVE]
        for event in requeues:
            assert "worker lost" in event["data"].get("reason", ""), f"execution {pk}: {event['data']}"
            assert event["data"]["error"]["type"] == "WorkerLost", event["data"]
        if requeues:
            requeued_by_reaper.add(pk)
            assert len(requeues) == 1 and row["attempt"] == 2, f"execution {pk}: attempt {row['attempt']}, {history}"
            assert requeues[0]["data"]["attempt"] == 2
        else:
            assert row["attempt"] == 1, f"execution {pk}: attempt {row['attempt']} without a requeue: {history}"

    assert requeued_by_reaper, "the reaper requeued nothing"
    assert requeued_by_reaper == lost, f"requeued {sorted(requeued_by_reaper)}, lost at the kill {sorted(lost)}"
