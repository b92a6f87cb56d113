"""The database goes away while agents run: nothing is lost and no execution runs twice at once.

PostgreSQL: every connection to the test's database is cut (``pg_terminate_backend``)
and new ones are refused (``ALLOW_CONNECTIONS false``, which binds superusers too)
for the length of the outage. SQLite, where a server cannot go away: another
process holds the write lock for that long, so every write fails or waits.

A short outage (well inside the lease) must cost nothing: every execution
completes on its first attempt. A long one (past the lease) must make each
worker stop its agent before its lease can pass to another, and the execution
then completes on a later attempt. In both, the agents' own marks show no two
runs of one execution at the same time.
"""

import contextlib
import sqlite3
import time

import pytest

from tests.process.conftest import wait_until
from tests.process.gates import overlapping_runs, runs, submit_gated

pytestmark = pytest.mark.process

COUNT = 10
LEASE = 8
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


@contextlib.contextmanager
def database_away(symphony):
    """The database unreachable for the workers until the block ends."""
    if symphony.db.vendor == "postgresql":
        import psycopg

        url = symphony.env["DATABASE_URL"]
        name = url.rsplit("/", 1)[1]
        symphony.db.close()
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            try:
                yield
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    else:
        lock = sqlite3.connect(symphony.env["SYMPHONY_SQLITE_PATH"], timeout=60, isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            lock.execute("COMMIT")
            lock.close()


def start_cluster(symphony):
    symphony.env.update({"SYMPHONY_LEASE_SECONDS": str(LEASE), "SYMPHONY_WORKERS": "5"})
    symphony.start_dispatcher()
    return [symphony.start_worker(), symphony.start_worker()]  # 10 workers: every execution at once


def states(symphony, ids):
    rows = symphony.db.executions()
    return [rows[pk]["state"] for pk in ids]


def wait_all(symphony, ids, state, workers, *, timeout=120):
    wait_until(
        lambda: states(symphony, ids) == [state] * len(ids),
        timeout=timeout,
        what=f"{len(ids)} executions {state}",
        interval=0.2,
        alive=lambda: symphony.expect_running(*workers),
    )


def test_a_short_outage_costs_nothing(symphony, tmp_path):
    gate, marks = tmp_path / "gate", tmp_path / "marks"
    workers = start_cluster(symphony)
    ids = submit_gated(symphony, COUNT, gate, marks)
    wait_all(symphony, ids, "RUNNING", workers)

    with database_away(symphony):
        time.sleep(LEASE / 4)  # the outage itself: shorter than what the lease allows

    gate.touch()
    wait_all(symphony, ids, "COMPLETED", workers)
    rows = symphony.db.executions()
    assert [rows[pk]["attempt"] for pk in ids] == [1] * COUNT
    events = [event for pk in ids for event in symphony.db.events(pk)]
    assert [e for e in events if e["to_state"] == "QUEUED" and e["from_state"] in ("PREPARING", "RUNNING")] == []
    assert overlapping_runs(marks) == {}
    assert all(len(spans) == 1 for spans in runs(marks).values())


def test_a_long_outage_stops_every_agent_before_its_lease_can_pass(symphony, tmp_path):
    gate, marks = tmp_path / "gate", tmp_path / "marks"
    workers = start_cluster(symphony)
    ids = submit_gated(symphony, COUNT, gate, marks)
    wait_all(symphony, ids, "RUNNING", workers)

    with database_away(symphony):
        # Until every agent has been told to stop (its marks say so), well past the lease.
        wait_until(
            lambda: sum(1 for spans in runs(marks).values() for span in spans if span[1] is not None) == COUNT,
            timeout=LEASE * 4,
            what="every agent stopped while the database was away",
            interval=0.1,
        )
        time.sleep(LEASE / 2)  # and the outage lasts beyond every lease

    wait_until(
        lambda: (
            all(state in {"RUNNING", *FINISHED} for state in states(symphony, ids))
            and len([s for s in runs(marks).values() if len(s) >= 2]) == COUNT
        ),
        timeout=120,
        what="every execution running again",
        interval=0.2,
        alive=lambda: symphony.expect_running(*workers),
    )
    gate.touch()
    wait_all(symphony, ids, "COMPLETED", workers)

    assert overlapping_runs(marks) == {}
    rows = symphony.db.executions()
    assert all(rows[pk]["attempt"] == 2 for pk in ids), {pk: rows[pk]["attempt"] for pk in ids}
    for pk in ids:
        reasons = [e["data"].get("error", {}).get("type") for e in symphony.db.events(pk) if e["to_state"] == "QUEUED"]
        assert reasons[1:] in (["DatabaseUnavailable"], ["WorkerLost"]), (pk, reasons)
