"""``/metrics``: the Prometheus exposition, parsed back with prometheus-client's own parser, and who may read it."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from executions.heartbeats import heartbeat_beat
from executions.models import ExecutionState as S
from executions.rollup import duration_bucket, rollup_catch_up
from executions.services import execution_submit
from executions.state import transition
from symphony.tokens import token_create
from tests.conftest import make_operator
from tests.executions.rollups import ended

pytestmark = pytest.mark.django_db

URL = "/metrics"


def families(response) -> dict:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    return {family.name: family for family in text_string_to_metric_families(response.content.decode())}


def samples(family, name: str | None = None) -> dict[tuple, float]:
    return {
        tuple(sorted(sample.labels.items())): sample.value
        for sample in family.samples
        if name is None or sample.name == name
    }


@pytest.fixture
def operator_client(client, alice):
    client.force_login(make_operator(alice))
    return client


def test_it_exposes_states_durations_queue_workers_and_routing(operator_client, make_agent):
    echo = make_agent("echo")
    # Ended more than an hour and a settling time ago: folded into the counters.
    old = timezone.now() - timedelta(hours=3)
    for seconds, state in ((0.5, S.COMPLETED), (3.0, S.COMPLETED), (40.0, S.FAILED)):
        ended(echo, state, old, seconds=seconds, strategy="capability_match")
    for _ in range(2):
        execution_submit(agent=echo, input_data={})
    running = execution_submit(agent=echo, input_data={})
    transition(running.pk, S.PREPARING, expected=[S.QUEUED])
    heartbeat_beat(role="worker", name="worker:h:1")
    rollup_catch_up()

    found = families(operator_client.get(URL))

    assert samples(found["symphony_executions"]) == {
        (("agent", "echo"), ("state", "QUEUED")): 2,
        (("agent", "echo"), ("state", "PREPARING")): 1,
    }
    assert samples(found["symphony_queue_depth"]) == {(): 2}
    ended_total = samples(found["symphony_executions_ended"], "symphony_executions_ended_total")
    assert ended_total[(("agent", "echo"), ("state", "COMPLETED"))] == 2
    assert ended_total[(("agent", "echo"), ("state", "FAILED"))] == 1
    histogram = found["symphony_execution_duration_seconds"]
    buckets = {
        labels[1][1]: value
        for labels, value in samples(histogram, "symphony_execution_duration_seconds_bucket").items()
    }
    assert buckets["+Inf"] == 3
    bounds = sorted((float(le), value) for le, value in buckets.items())
    assert [value for _, value in bounds] == sorted(value for _, value in bounds)  # cumulative
    first_holding_one = next(bound for bound, value in bounds if value >= 1)
    assert first_holding_one >= 0.5 and duration_bucket(0.5) == duration_bucket(first_holding_one)
    assert samples(histogram, "symphony_execution_duration_seconds_sum") == {(("agent", "echo"),): 43.5}
    assert samples(found["symphony_routing_decisions"], "symphony_routing_decisions_total") == {
        (("agent", "echo"), ("strategy", "capability_match")): 3
    }
    assert samples(found["symphony_live_processes"]) == {(("role", "dispatcher"),): 0, (("role", "worker"),): 1}


def test_anonymous_scrapes_are_refused_unless_the_setting_says_public(client, settings):
    response = client.get(URL)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Bearer")

    settings.SYMPHONY_METRICS_PUBLIC = True
    assert "symphony_queue_depth" in families(client.get(URL))


@pytest.mark.parametrize(("role", "allowed"), [("plain", False), ("staff", True), ("operator", True)])
def test_a_session_or_token_may_scrape_if_operator_or_staff(client, role, allowed):
    user = User.objects.create_user(role, is_staff=role == "staff")
    if role == "operator":
        make_operator(user)
    raw = token_create(user=user, name="prometheus")[1]

    by_token = client.get(URL, headers={"Authorization": f"Bearer {raw}"})
    client.force_login(user)
    by_session = client.get(URL)

    assert (by_token.status_code, by_session.status_code) == ((200, 200) if allowed else (403, 403))


def test_a_bad_token_is_refused(client):
    response = client.get(URL, headers={"Authorization": "Bearer sym_nothing"})

    assert response.status_code == 401


def test_the_query_count_does_not_grow_with_the_rows(operator_client, make_agent, django_assert_num_queries):
    agents = [make_agent("echo", name=f"agent-{n}") for n in range(2)]

    def fill(count: int) -> None:
        for agent in agents:
            for n in range(count):
                ended(agent, S.COMPLETED, timezone.now() - timedelta(hours=2, minutes=n), seconds=n + 0.1)
            execution_submit(agent=agent, input_data={})
        rollup_catch_up()

    fill(2)
    with django_assert_num_queries(10):
        families(operator_client.get(URL))
    agents.extend(make_agent("echo", name=f"agent-{n}") for n in range(2, 8))
    fill(20)
    with django_assert_num_queries(10):
        families(operator_client.get(URL))
