"""Stopping a worker cluster (SIGTERM, or Ctrl-C: SIGINT to its process group) costs nothing.

Its workers stop claiming, what they run gets the stop grace, is then put back in
the queue with its attempt not counted, and every process of the cluster has
exited within the grace and 5 s. A new cluster finishes those executions as
their first attempt.
"""

import signal
from collections.abc import Callable

import pytest

from tests.process.conftest import Proc, Stack, wait_until

pytestmark = pytest.mark.process

GRACE = 2
WORKERS = 4
# The bound for a busy cluster; an idle one has nothing to wait for.
BUSY_EXIT_WITHIN = GRACE + 5
IDLE_EXIT_WITHIN = 5


@pytest.fixture
def stack(symphony: Stack) -> Stack:
    symphony.env.update(
        {
            "SYMPHONY_STOP_GRACE_SECONDS": str(GRACE),
            # The default cancel grace (5 s): a stopping worker waits at most 2 s of it, so the
            # cluster's own hard bound (grace + 2 + 2) stays inside BUSY_EXIT_WITHIN.
            "SYMPHONY_WORKERS": str(WORKERS),
        }
    )
    symphony.manage(
        "shell",
        "-c",
        "from routing.services import agent_config_upsert;"
        "agent_config_upsert(name='gated', settings={'path': 'tests.agents.waits_for_gate'})",
    )
    return symphony


def gone(*procs: Proc) -> bool:
    return all(not proc.running() and not proc.group_alive() for proc in procs)


def stop_requests(worker: Proc) -> int:
    return worker.output().count("stop requested")


def stop_while_running(stack: Stack, gate, send_stop: Callable[[Proc], None]) -> None:
    worker, dispatcher = stack.start_worker(), stack.start_dispatcher()
    ids = [stack.submit("gated", {"gate": str(gate)}) for _ in range(WORKERS)]

    def all_running():
        rows = stack.db.executions()
        return all(rows[pk]["state"] == "RUNNING" for pk in ids)

    wait_until(all_running, timeout=90, what=f"all {WORKERS} executions RUNNING", alive=stack.expect_running)

    send_stop(worker)
    dispatcher.popen.send_signal(signal.SIGTERM)
    wait_until(
        lambda: gone(worker, dispatcher),
        timeout=BUSY_EXIT_WITHIN,
        what=f"every process of the worker cluster and the dispatcher gone within {BUSY_EXIT_WITHIN}s",
    )
    assert stop_requests(worker) == WORKERS, worker.output()

    # What follows holds once the runner requeues on a stop (executions.runner).
    assert worker.popen.returncode == 0, f"the worker cluster was killed, not stopped:\n{worker.output()}"
    assert dispatcher.popen.returncode == 0
    rows = stack.db.executions()
    for pk in ids:
        assert (rows[pk]["state"], rows[pk]["attempt"]) == ("QUEUED", 1), f"execution {pk}: {rows[pk]}"
        requeued = [
            event
            for event in stack.db.events(pk)
            if event["kind"] == "state" and (event["from_state"], event["to_state"]) == ("RUNNING", "QUEUED")
        ]
        assert len(requeued) == 1, f"execution {pk}: {stack.db.events(pk)}"
        assert "worker stopping" in requeued[0]["data"]["reason"], requeued[0]

    stack.start_worker()
    stack.start_dispatcher()
    gate.touch()

    def all_completed():
        rows = stack.db.executions()
        return rows if all(rows[pk]["state"] == "COMPLETED" for pk in ids) else None

    rows = wait_until(all_completed, timeout=90, what="all executions COMPLETED after the restart", interval=0.2)
    for pk in ids:
        assert rows[pk]["attempt"] == 1, f"execution {pk}: {rows[pk]}"
        assert rows[pk]["result"] == {"gate": "opened"}, f"execution {pk}: {rows[pk]}"


def test_ctrl_c_puts_running_executions_back_without_counting_an_attempt(stack, tmp_path):
    stop_while_running(stack, tmp_path / "gate", lambda worker: worker.signal_group(signal.SIGINT))


def test_sigterm_to_the_leader_alone_stops_its_workers_the_same_way(stack, tmp_path):
    stop_while_running(stack, tmp_path / "gate", lambda worker: worker.popen.send_signal(signal.SIGTERM))


def test_an_idle_cluster_stops_at_once_on_sigterm_to_its_group(stack):
    worker = stack.start_worker()
    quick = stack.submit("slow", {"seconds": 0, "steps": 1})
    wait_until(
        lambda: stack.db.executions()[quick]["state"] == "COMPLETED",
        timeout=90,
        what="a first execution COMPLETED",
        alive=stack.expect_running,
    )

    worker.signal_group(signal.SIGTERM)
    wait_until(
        lambda: gone(worker),
        timeout=IDLE_EXIT_WITHIN,
        what=f"every process of the idle worker cluster gone within {IDLE_EXIT_WITHIN}s",
    )
    assert worker.popen.returncode == 0, worker.output()
    assert stop_requests(worker) == WORKERS, worker.output()
