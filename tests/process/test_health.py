"""The health check against real processes: healthy once a worker cluster and a dispatcher run,
and a cluster that stops is no longer counted."""

import httpx
import pytest

from tests.process.conftest import Stack, wait_until

pytestmark = pytest.mark.process


def health(stack: Stack) -> tuple[int, dict]:
    with httpx.Client(base_url=stack.base_url, trust_env=False, timeout=10) as client:
        response = client.get("/api/v1/health")
    return response.status_code, response.json()


def test_healthy_with_a_worker_cluster_and_a_dispatcher_and_not_once_the_cluster_stops(symphony: Stack):
    symphony.start_web()
    status, body = health(symphony)
    assert status == 503 and body["checks"]["workers"]["status"] == "failing"
    worker, _ = symphony.start_worker(), symphony.start_dispatcher()

    wait_until(lambda: health(symphony)[0] == 200, timeout=60, what="the health check passing",
               alive=symphony.expect_running)  # fmt: skip
    status, body = health(symphony)
    assert body["checks"]["workers"]["alive"] == 1 and body["checks"]["dispatcher"]["alive"] == 1

    worker.stop(grace=30)
    status, body = health(symphony)
    assert status == 503 and body["checks"]["workers"]["status"] == "failing"
    assert body["checks"]["dispatcher"]["status"] == "ok"
