"""Routing and concurrency limits across real processes: what holds with many workers."""

import subprocess
from collections import Counter

import pytest

from tests.process.conftest import PYTHON, ROOT, wait_until
from tests.process.gates import most_at_once, overlapping_runs, submit_gated

pytestmark = pytest.mark.process

FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
LIMIT = 2
COUNT = 8


def test_max_concurrency_holds_across_worker_clusters(symphony, tmp_path):
    gate = tmp_path / "gate"
    symphony.start_dispatcher()
    # 2 clusters x 2 workers, one slot each, so that the limit can only hold if it holds across processes.
    clusters = [symphony.start_worker(SYMPHONY_SLOTS="1") for _ in range(2)]
    # Held, then released in one transaction: all are ready at once, and they run until the
    # gate opens, so only the limit keeps a third from starting beside the first two.
    ids = submit_gated(symphony, COUNT, gate, tmp_path / "marks", max_concurrency=LIMIT)

    def running():
        rows = symphony.db.executions()
        return sum(rows[pk]["state"] == "RUNNING" for pk in ids) == LIMIT

    wait_until(
        running, timeout=60, what=f"{LIMIT} executions running", alive=lambda: symphony.expect_running(*clusters)
    )
    gate.touch()

    def all_finished():
        rows = symphony.db.executions()
        return all(rows[pk]["state"] in FINISHED for pk in ids)

    wait_until(
        all_finished,
        timeout=90,
        what=f"{COUNT} executions finished",
        interval=0.2,
        alive=lambda: symphony.expect_running(*clusters),
    )

    rows = symphony.db.executions()
    assert [rows[pk]["state"] for pk in ids] == ["COMPLETED"] * COUNT
    assert most_at_once(symphony.db, ids) == LIMIT
    assert overlapping_runs(tmp_path / "marks") == {}
    workers = {
        event["data"]["worker"].rsplit(":", 1)[0]
        for pk in ids
        for event in symphony.db.events(pk)
        if event["to_state"] == "PREPARING"
    }
    assert len(workers) > 1, f"one worker process ran everything: {workers}"


ROUTE_MANY = """
from routing.decisions import RouteRequest
from executions.agent_activity import task_router
router = task_router("round_robin")
print(",".join(router.decide(RouteRequest()).chosen.name for _ in range({n})))
"""


def test_round_robin_is_fair_across_two_processes(symphony):
    rounds = 30
    command = [PYTHON, "manage.py", "shell", "-c", ROUTE_MANY.format(n=rounds)]
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=symphony.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    chosen = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        chosen.extend(out.strip().splitlines()[-1].split(","))

    counts = Counter(chosen)
    assert sorted(counts) == ["flaky", "slow", "text-stats"]
    assert set(counts.values()) == {2 * rounds // 3}, counts


DECIDE_EACH_LINE = """
import sys
from routing.decisions import RouteRequest
from executions.agent_activity import task_router
router = task_router("content_match")
for line in sys.stdin:
    decision = router.decide(RouteRequest(query=line.strip()), dry_run=True)
    print(decision.chosen.name if decision.chosen else "-", flush=True)
"""

CORRECT = """
from routing.corrections import routing_correct
from routing.models import AgentConfig
routing_correct(query={query!r}, correct=AgentConfig.objects.get(name={right!r}),
                chosen=AgentConfig.objects.get(name={wrong!r}))
"""


def test_a_correction_changes_the_next_decision_in_a_running_process(symphony):
    """One process keeps routing (model loaded, vectors cached); another records a correction; the next
    decision of the first follows it, with no restart and no cache to invalidate by hand."""
    query = "How many words and sentences are in this paragraph?"
    router = subprocess.Popen(
        [PYTHON, "manage.py", "shell", "--no-imports", "-c", DECIDE_EACH_LINE],
        cwd=ROOT,
        env=symphony.env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        router.stdin.write(query + "\n")
        router.stdin.flush()
        before = router.stdout.readline().strip()
        assert before == "text-stats", router.stderr.read() if not before else before

        symphony.manage("shell", "-c", CORRECT.format(query=query, right="slow", wrong=before))
        router.stdin.write(query + "\n")
        router.stdin.flush()
        after = router.stdout.readline().strip()
    finally:
        router.stdin.close()
        router.wait(timeout=60)

    assert after == "slow"


def test_routing_in_several_processes_at_once_on_a_fresh_install_never_fails(symphony):
    """The first decisions embed and store every agent text; done by four processes at once they must all
    answer (on SQLite a write inside the routing transaction used to fail with "database is locked")."""
    command = [PYTHON, "manage.py", "symphony", "route", "--query"]
    procs = [
        subprocess.Popen(
            [*command, f"How readable is paragraph {n}?"],
            cwd=ROOT,
            env=symphony.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    outcomes = [(proc.wait(timeout=180), *proc.communicate()) for proc in procs]

    for code, out, err in outcomes:
        assert code == 0, err
        assert "\nchosen: text-stats:" in out, out
    stored = symphony.manage(
        "shell", "--no-imports", "-c", "from routing.models import TextVector; print(TextVector.objects.count())"
    )
    assert int(stored.stdout.strip()) > 0
