"""Redis (the broker and the channel layer) restarts during a burst: every execution still runs, once.

The test runs a Redis server of its own on a free port, so killing it touches
nothing else on the machine. A restart loses the wake-ups waiting in Redis and
breaks every worker's connection; the execution table is the queue, so the
dispatcher wakes workers for what is left and nothing is lost.
"""

import contextlib
import shutil
import subprocess

import pytest

from tests.process.conftest import TIMERS, free_port, wait_until
from tests.process.gates import overlapping_runs, submit_gated

pytestmark = pytest.mark.process

COUNT = 300
WORKERS = int(TIMERS["SYMPHONY_WORKERS"])
SLOTS = 20


class RedisServer:
    def __init__(self, workdir):
        self.port, self.workdir, self.proc = free_port(), workdir, None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [shutil.which("redis-server"), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=1)
        wait_until(client.ping, timeout=20, what="redis-server answering")
        client.close()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@pytest.fixture
def private_redis(tmp_path):
    server = RedisServer(tmp_path)
    server.start()
    yield server
    with contextlib.suppress(Exception):
        server.kill()


def test_a_redis_restart_during_a_burst_loses_nothing(symphony, private_redis, tmp_path):
    gate, marks = tmp_path / "gate", tmp_path / "marks"
    symphony.env["REDIS_URL"] = private_redis.url
    symphony.env.pop("SYMPHONY_Q_CLUSTER_NAME", None)  # a Redis of its own: the default name is free
    worker, dispatcher = symphony.start_worker(SYMPHONY_SLOTS=str(SLOTS)), symphony.start_dispatcher()
    ids = submit_gated(symphony, COUNT, gate, marks)

    def count(state):
        return sum(1 for row in symphony.db.executions().values() if row["state"] == state)

    # Every slot of every worker holds a gated execution and the rest wait: the burst is certainly in flight.
    wait_until(lambda: count("RUNNING") == WORKERS * SLOTS, timeout=60, what="every slot busy", interval=0.05)
    private_redis.kill()
    private_redis.start()
    gate.touch()

    wait_until(
        lambda: count("COMPLETED") == COUNT,
        timeout=240,
        what=f"all {COUNT} executions completed",
        interval=0.5,
        alive=lambda: symphony.expect_running(worker, dispatcher),
    )
    rows = symphony.db.executions()
    assert {rows[pk]["state"] for pk in ids} == {"COMPLETED"}
    assert {rows[pk]["attempt"] for pk in ids} == {1}
    ends = symphony.db.rows(
        "SELECT execution_id, COUNT(*) AS n FROM executions_executionevent WHERE to_state = 'COMPLETED' "
        "GROUP BY execution_id"
    )
    assert len(ends) == COUNT and {row["n"] for row in ends} == {1}
    assert overlapping_runs(marks) == {}
