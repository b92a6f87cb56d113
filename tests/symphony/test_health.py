"""GET /api/v1/health: 200 while the database, the broker, a worker cluster and a dispatcher are
alive; 503 naming what is not. Each failure here is real: a refused port, a missing heartbeat."""

import json
import os
import socket
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.test import override_settings
from django.utils import timezone

from executions.dispatcher import run_dispatcher
from executions.heartbeats import heartbeat_beat
from executions.models import Heartbeat, ProcessRole
from executions.signals import dispatch_passes

HEALTH = "/api/v1/health"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def worker_alive(db):
    heartbeat_beat(role=ProcessRole.WORKER, name="worker:test:1")


@pytest.fixture
def dispatcher_alive(db):
    heartbeat_beat(role=ProcessRole.DISPATCHER, name="dispatcher:test:1")


@pytest.mark.django_db(transaction=True)  # the dispatcher manages its own connection, as in its process
def test_it_is_healthy_while_a_worker_cluster_beats_and_a_dispatcher_passes(client, worker_alive):
    stop, seen = threading.Event(), []

    def look_mid_pass() -> int:
        seen.append(client.get(HEALTH))
        stop.set()
        return 0

    dispatch_passes.append(look_mid_pass)
    try:
        run_dispatcher(stop, interval=0)
    finally:
        dispatch_passes.remove(look_mid_pass)

    (response,) = seen
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok", "broker": "ok", "workers": "ok", "dispatcher": "ok"
    }  # fmt: skip
    assert body["checks"]["broker"]["broker"] == ("redis" if settings.Q_CLUSTER.get("redis") else "orm")
    assert body["checks"]["workers"]["alive"] == 1
    assert body["checks"]["dispatcher"]["interval_seconds"] == settings.SYMPHONY_DISPATCH_INTERVAL
    # A dispatcher that stops cleanly is no longer counted, at once.
    after = client.get(HEALTH)
    assert after.status_code == 503 and after.json()["checks"]["dispatcher"]["status"] == "failing"


@pytest.mark.django_db
def test_no_worker_cluster_alive_is_a_503_that_says_so(client, dispatcher_alive):
    response = client.get(HEALTH)

    assert response.status_code == 503
    workers = response.json()["checks"]["workers"]
    assert workers["status"] == "failing"
    assert workers["detail"].startswith("No worker cluster has reported in the last 15 s (last report: never)")
    assert response.json()["checks"]["database"]["status"] == "ok"


@pytest.mark.django_db
def test_a_worker_cluster_that_stopped_beating_counts_as_dead(client, dispatcher_alive):
    heartbeat_beat(role=ProcessRole.WORKER, name="worker:gone:1")
    Heartbeat.objects.filter(name="worker:gone:1").update(beat_at=timezone.now() - timedelta(minutes=1))

    workers = client.get(HEALTH).json()["checks"]["workers"]

    assert workers["status"] == "failing" and "(last report: 60 s ago)" in workers["detail"]


@pytest.mark.django_db
def test_a_dispatcher_is_judged_against_its_interval(client, worker_alive):
    heartbeat_beat(role=ProcessRole.DISPATCHER, name="dispatcher:slow:1")
    Heartbeat.objects.filter(role=ProcessRole.DISPATCHER).update(beat_at=timezone.now() - timedelta(seconds=40))

    assert client.get(HEALTH).json()["checks"]["dispatcher"]["status"] == "failing"
    with override_settings(SYMPHONY_DISPATCH_INTERVAL=20.0):  # three missed passes of 20 s: 60 s
        response = client.get(HEALTH)
    assert response.status_code == 200 and response.json()["checks"]["dispatcher"]["last_pass_seconds_ago"] >= 40


@pytest.mark.django_db
def test_a_broker_that_refuses_connections_is_a_503_with_the_error_for_staff_only(
    client, admin_user, worker_alive, dispatcher_alive, unused_port
):
    broken = {key: value for key, value in settings.Q_CLUSTER.items() if key != "orm"}
    broken["redis"] = f"redis://127.0.0.1:{unused_port}/0"

    with override_settings(Q_CLUSTER=broken):
        public = client.get(HEALTH)
        client.force_login(admin_user)
        staff = client.get(HEALTH)

    assert public.status_code == 503
    broker = public.json()["checks"]["broker"]
    assert broker == {"status": "failing", "detail": "The broker check failed (ConnectionError); see the server log."}
    assert str(unused_port) not in public.content.decode()
    assert "ConnectionError" in staff.json()["checks"]["broker"]["error"]
    assert {name for name, check in public.json()["checks"].items() if check["status"] != "ok"} == {"broker"}


@pytest.mark.django_db
def test_it_needs_no_authentication_and_says_so_in_the_schema(client):
    schema = client.get("/api/v1/openapi.json").json()

    operation = schema["paths"]["/api/v1/health"]["get"]
    assert operation["operationId"] == "health" and "security" not in operation
    assert set(operation["responses"]) >= {"200", "503"}


def test_with_the_database_unreachable_every_check_fails_and_no_address_is_shown(unused_port):
    """A real outage: a web process whose database refuses connections (so the ORM broker and the
    heartbeats cannot be read either), in a process of its own."""
    script = (
        "import django, json; django.setup();"
        "from django.test.utils import setup_test_environment; setup_test_environment();"
        "from django.test import Client; r = Client().get('/api/v1/health');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    env = {
        **{key: value for key, value in os.environ.items() if key not in ("REDIS_URL",)},
        "DJANGO_SETTINGS_MODULE": "symphony.test_settings",
        "DATABASE_URL": f"postgres://nobody@127.0.0.1:{unused_port}/nothing",
    }
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )

    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["status"] == 503 and answer["body"]["status"] == "failing"
    assert {name: check["status"] for name, check in answer["body"]["checks"].items()} == {
        "database": "failing", "broker": "failing", "workers": "failing", "dispatcher": "failing"
    }  # fmt: skip
    assert "OperationalError" in answer["body"]["checks"]["database"]["detail"]
    assert str(unused_port) not in done.stdout
