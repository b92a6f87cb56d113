"""A concurrency group's limit across real processes: a batch never runs more than its max_concurrent at once."""

import pytest

from tests.process.conftest import wait_until
from tests.process.gates import most_at_once, overlapping_runs, submit_gated

pytestmark = pytest.mark.process

FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
LIMIT = 3
COUNT = 10


def test_a_groups_limit_holds_across_worker_clusters(symphony, tmp_path):
    gate, marks = tmp_path / "gate", tmp_path / "marks"
    symphony.start_dispatcher()
    # 2 clusters x 2 workers, one slot each (one more than the limit): the limit must hold across processes.
    clusters = [symphony.start_worker(SYMPHONY_SLOTS="1") for _ in range(2)]
    # The agent has no limit of its own: only the group keeps a fourth from starting while the gate is closed.
    ids = submit_gated(symphony, COUNT, gate, marks, group=LIMIT)

    def limit_reached():
        rows = symphony.db.executions()
        return sum(rows[pk]["state"] == "RUNNING" for pk in ids) == LIMIT

    wait_until(
        limit_reached, timeout=60, what=f"{LIMIT} executions running", alive=lambda: symphony.expect_running(*clusters)
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
    assert len({rows[pk]["concurrency_group_id"] for pk in ids}) == 1
    assert most_at_once(symphony.db, ids) == LIMIT
    assert overlapping_runs(marks) == {}
    workers = {
        event["data"]["worker"].rsplit(":", 1)[0]
        for pk in ids
        for event in symphony.db.events(pk)
        if event["to_state"] == "PREPARING"
    }
    assert len(workers) > 1, f"one worker process ran everything: {workers}"
