"""Kill the worker cluster three times during a 200-step workflow: it still completes, every step once.

A run advances inside the transaction of its step execution's end, so a worker
killed mid-step (or mid-advance) rolls back whatever it had not committed. The
dispatcher's reaper requeues the execution it held as a new attempt of the same
execution, a new cluster finishes it, and the run goes on from there: no step
is lost, none is started twice, none ends twice.

Each kill freezes the cluster first (SIGSTOP) and reads which executions it
holds, so the test knows exactly what the kill loses and can check that the
reaper, and only the reaper, put those back.
"""

import json
import os
import signal
from collections import Counter

import pytest

from tests.process.conftest import wait_until

pytestmark = pytest.mark.process

CHAINS = "abcd"
LENGTH = 50  # 4 chains of 50: 200 steps
KILLS = 3
PROGRESS_BETWEEN_KILLS = 12  # steps ended under each new cluster before it is killed
ACTIVE = ("PREPARING", "RUNNING")

START_RUN = """
from routing.models import AgentConfig
from workflows.builder import Workflow
from workflows.services import workflow_definition_save, workflow_run_start

AgentConfig.objects.update_or_create(name="echo", defaults={{"settings": {{"path": "tests.agents.echo"}}}})
wf = Workflow("killed-{length}x{chains}", description="Chains of echo steps joined at the end.")
ends = []
for chain in {chains!r}:
    previous = None
    for n in range(1, {length} + 1):
        step_id = f"{{chain}}{{n:02d}}"
        depends_on = [previous] if previous else []
        if chain == {chains!r}[-1] and n == {length}:
            depends_on += ends  # the last step joins the other chains
        previous = wf.step(
            step_id,
            agent="echo",
            input={{"chain": chain, "n": n, "previous": previous.output("echo.n") if previous else None}},
            depends_on=depends_on,
            retries=3,  # the requeue after a lost worker is a new attempt: more than the kills
        )
    ends.append(previous)
workflow_definition_save(source=wf.to_dict())
print(workflow_run_start(definition=wf.name).pk)
"""


def step_ids() -> list[str]:
    return [f"{chain}{n:02d}" for chain in CHAINS for n in range(1, LENGTH + 1)]


def run_row(db, run_id: int) -> dict:
    return db.rows("SELECT status, steps_ended, error FROM workflows_workflowrun WHERE id = %s", (run_id,))[0]


def in_group(owner: str, pgid: int) -> bool:
    """Whether a lease owner (``host:pid:thread``) is a process of the group ``pgid``."""
    try:
        return os.getpgid(int(owner.split(":")[1])) == pgid
    except (IndexError, ValueError, ProcessLookupError):
        return False


def kill_while_busy(symphony, cluster, run_id: int) -> set[int]:
    """SIGKILL the cluster's process group while it holds executions of the run; returns the ones it held.

    The group is frozen before the database is read, so what the read shows as
    held is exactly what the kill loses (a transaction it had not committed is
    rolled back by the kill and was never visible). Executions still leased to
    an earlier, dead cluster (not reaped yet) are not this cluster's.
    """

    def frozen_holding_work():
        cluster.signal_group(signal.SIGSTOP)
        held = {
            row["id"]
            for row in symphony.db.rows(
                "SELECT e.id, e.lease_owner FROM executions_execution e "
                "JOIN workflows_steprun s ON s.execution_id = e.id "
                f"WHERE s.run_id = %s AND e.state IN {ACTIVE!r}",
                (run_id,),
            )
            if in_group(row["lease_owner"], cluster.pgid)
        }
        if not held:
            cluster.signal_group(signal.SIGCONT)  # between two executions: let it go on and look again
        return held

    held = wait_until(frozen_holding_work, timeout=60, what="the cluster holding a step's execution", interval=0.02)
    cluster.signal_group(signal.SIGKILL)
    cluster.popen.wait(10)
    wait_until(lambda: not cluster.group_alive(), timeout=10, what="every process of the killed cluster gone")
    return held


def test_killing_workers_three_times_during_a_200_step_workflow_runs_every_step_once(symphony):
    run_id = int(symphony.manage("shell", "-c", START_RUN.format(chains=CHAINS, length=LENGTH)).stdout.split()[-1])
    dispatcher = symphony.start_dispatcher()
    cluster = symphony.start_worker()

    lost: set[int] = set()
    for kill in range(1, KILLS + 1):
        floor = run_row(symphony.db, run_id)["steps_ended"] + PROGRESS_BETWEEN_KILLS

        def progressed(floor=floor, kill=kill):
            row = run_row(symphony.db, run_id)
            assert row["status"] == "RUNNING", f"before kill {kill} the run is {row['status']}: {row['error']}"
            return row["steps_ended"] >= floor

        wait_until(
            progressed,
            timeout=90,
            what=f"{PROGRESS_BETWEEN_KILLS} more steps before kill {kill}",
            alive=lambda cluster=cluster: symphony.expect_running(dispatcher, cluster),
        )
        lost |= kill_while_busy(symphony, cluster, run_id)
        cluster = symphony.start_worker()

    assert run_row(symphony.db, run_id)["steps_ended"] < len(step_ids()), "the run ended before the last kill"
    final = wait_until(
        lambda: (row := run_row(symphony.db, run_id))["status"] not in ("PENDING", "RUNNING") and row,
        timeout=180,
        what="the run to end",
        interval=0.2,
        alive=lambda: symphony.expect_running(dispatcher, cluster),
    )
    assert final["status"] == "COMPLETED", f"the run ended {final['status']}: {final['error']}"
    assert final["steps_ended"] == len(step_ids())

    # Every step: one step run, never superseded, COMPLETED, with its input built from its predecessor's output.
    rows = symphony.db.rows(
        "SELECT step_id, state, superseded, execution_id, output FROM workflows_steprun WHERE run_id = %s", (run_id,)
    )
    assert sorted(row["step_id"] for row in rows) == sorted(step_ids()), "a step ran twice or never"
    for row in rows:
        assert row["state"] == "COMPLETED" and not row["superseded"], row
        n = int(row["step_id"][1:])
        output = json.loads(row["output"]) if isinstance(row["output"], str) else row["output"]  # SQLite: text
        assert output["echo"] == {"chain": row["step_id"][0], "n": n, "previous": n - 1 if n > 1 else None}

    # Every step: one execution, and that execution COMPLETED once.
    executions = {row["execution_id"] for row in rows}
    assert len(executions) == len(step_ids()), "two steps share an execution"
    submitted = symphony.db.value(
        "SELECT COUNT(*) FROM executions_execution e JOIN workflows_steprun s ON s.execution_id = e.id "
        "WHERE s.run_id = %s",
        (run_id,),
    )
    assert submitted == len(step_ids())
    states = symphony.db.rows(
        "SELECT e.id, e.state, e.attempt FROM executions_execution e JOIN workflows_steprun s ON s.execution_id = e.id "
        "WHERE s.run_id = %s",
        (run_id,),
    )
    assert {row["state"] for row in states} == {"COMPLETED"}
    completions = symphony.db.rows(
        "SELECT v.execution_id, COUNT(*) AS n FROM executions_executionevent v "
        "JOIN workflows_steprun s ON s.execution_id = v.execution_id "
        "WHERE s.run_id = %s AND v.kind = 'state' AND v.to_state = 'COMPLETED' GROUP BY v.execution_id",
        (run_id,),
    )
    assert len(completions) == len(step_ids()) and {row["n"] for row in completions} == {1}

    # Each step's history: started once, ended once.
    step_events = symphony.db.rows(
        "SELECT step_id, data FROM workflows_runevent WHERE run_id = %s AND kind = 'step' ORDER BY id", (run_id,)
    )
    history: dict[str, list[str]] = {}
    for event in step_events:
        history.setdefault(event["step_id"], []).append(event["data"]["state"])
    assert history == {step_id: ["RUNNING", "COMPLETED"] for step_id in step_ids()}

    # What each kill held was put back by the reaper as a new attempt; nothing else was requeued.
    requeues = symphony.db.rows(
        "SELECT v.execution_id, v.data FROM executions_executionevent v "
        "JOIN workflows_steprun s ON s.execution_id = v.execution_id "
        f"WHERE s.run_id = %s AND v.kind = 'state' AND v.to_state = 'QUEUED' AND v.from_state IN {ACTIVE!r}",
        (run_id,),
    )
    for event in requeues:
        assert event["data"]["error"]["type"] == "WorkerLost", event["data"]
    requeued = Counter(event["execution_id"] for event in requeues)
    assert set(requeued) == lost, f"requeued {sorted(requeued)}, held at the kills {sorted(lost)}"
    for row in states:
        assert row["attempt"] == 1 + requeued[row["id"]], (row, requeued[row["id"]])
