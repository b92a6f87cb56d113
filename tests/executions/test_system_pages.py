"""The overview, agents and workers pages: what they show, to whom, and in how many queries."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from executions import stats
from executions.heartbeats import heartbeat_beat
from executions.models import Execution, Heartbeat
from executions.models import ExecutionState as S
from executions.rollup import rollup_catch_up
from executions.services import execution_submit
from executions.state import transition
from routing.models import AgentConfig
from tests.conftest import make_operator
from tests.executions.rollups import ended

pytestmark = pytest.mark.django_db

PAGES = ["executions:overview", "executions:agents", "executions:workers"]


@pytest.fixture
def operator(client, alice):
    client.force_login(make_operator(alice))
    return alice


@pytest.fixture
def get(client, operator):
    """The page ``name``'s HTML, as the operator sees it."""

    def page(name: str, **params) -> str:
        response = client.get(reverse(name), params)
        assert response.status_code == 200
        return response.content.decode()

    return page


def fill(agents: list[AgentConfig], per_agent: int, *, roll: bool = True) -> None:
    """Ended runs over the last day for each agent, one running and one queued each, rolled up
    (the rollup counts rows that end later than its last pass, so roll up once all are in)."""
    now = timezone.now()
    for agent in agents:
        for n in range(per_agent):
            state = S.FAILED if n % 4 == 0 else S.COMPLETED
            ended(agent, state, now - timedelta(minutes=7 * n + 1), seconds=0.5 + n, strategy="content_match")
        running = execution_submit(agent=agent, input_data={})
        lease = {"lease_owner": "host-a:4242:abc:1", "lease_expires_at": now + timedelta(seconds=30)}
        transition(running.pk, S.PREPARING, expected=[S.QUEUED], fields=lease)
        transition(running.pk, S.RUNNING, expected=[S.PREPARING])
        execution_submit(agent=agent, input_data={})
    if roll:
        rollup_catch_up()


@pytest.mark.parametrize("name", PAGES)
def test_it_is_for_operators_only(client, alice, bob, name):
    assert client.get(reverse(name))["Location"].startswith(reverse("login"))
    client.force_login(bob)
    assert client.get(reverse(name)).status_code == 403
    client.force_login(make_operator(alice))
    assert client.get(reverse(name)).status_code == 200


def test_the_overview_draws_throughput_and_run_times(get, operator, make_agent):
    fill([make_agent("echo")], per_agent=8)

    html = get("executions:overview")

    throughput = _svg(html, "throughput-chart")
    assert len(re.findall(r'<rect class="completed"', throughput)) >= 1
    assert len(re.findall(r'<rect class="failed"', throughput)) >= 1
    assert re.search(r'<path class="line p95" d="M[\d.]+,[\d.]+', _svg(html, "duration-chart"))
    assert 'id="queue-depth">1<' in html and 'id="running-count">1<' in html
    # The runs in the hour's bars (one every 7 minutes, every 4th failed).
    inside = Execution.objects.filter(finished_at__gte=stats.bars(window=stats.WINDOWS["hour"])[0].start)
    failed_inside = inside.filter(state=S.FAILED).count()
    assert f'id="ended-count">{inside.count()}<' in html and f'id="failed-count">{failed_inside}<' in html
    assert inside.count() >= 8 and failed_inside >= 2
    failed = Execution.objects.filter(state=S.FAILED).order_by("-id").first()
    assert f'id="failure-{failed.pk}"' in html


def test_the_window_switch_widens_the_span(get, operator, make_agent):
    fill([make_agent("echo")], per_agent=30)

    hour, week = get("executions:overview", window="hour"), get("executions:overview", window="week")

    assert 'id="ended-count">30<' not in hour
    assert 'id="ended-count">30<' in week
    assert len(re.findall(r"<rect ", _svg(week, "throughput-chart"))) >= 2


def test_an_empty_overview_says_so(get, operator):
    html = get("executions:overview")

    assert "nothing ended in this window" in html and "No failures." in html


def test_an_htmx_poll_gets_the_body_alone(client, operator):
    response = client.get(reverse("executions:overview"), headers={"HX-Request": "true"})

    html = response.content.decode()
    assert html.lstrip().startswith('<div id="overview"') and "<html" not in html
    assert 'hx-trigger="every 5s"' in html


def test_the_agents_page_shows_load_capacity_and_outcomes(get, operator, make_agent):
    echo = make_agent("echo", max_concurrency=3)
    other = make_agent("echo", name="other")
    fill([echo], per_agent=8, roll=False)
    fill([other], per_agent=4)

    html = get("executions:agents")

    row = _row(html, f"agent-{echo.pk}")
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
    assert cells[1:4] == ["1", "1", "3"]  # running, queued, capacity
    # 8 ended in the last day, 2 failed; 8 of the 12 routed runs were echo's.
    assert cells[4] == "75.0%" and cells[6] == "66.7%"
    assert len(re.findall(r'class="badge state-', cells[7])) == 5  # its five newest runs
    assert "Disable" not in html  # an operator may look, not change agents


def test_an_agent_is_disabled_and_enabled_with_the_permission(get, client, operator, make_agent):
    echo = make_agent("echo")
    operator.user_permissions.add(Permission.objects.get(codename="change_agentconfig"))

    assert "Disable" in get("executions:agents")
    url = reverse("executions:agent-enabled", args=[echo.pk])
    response = client.post(url, {"enabled": "0"}, headers={"HX-Request": "true"})

    assert response.status_code == 200 and "Enable</button>" in response.content.decode()
    assert AgentConfig.objects.get(pk=echo.pk).enabled is False
    client.post(url, {"enabled": "1"})
    assert AgentConfig.objects.get(pk=echo.pk).enabled is True


def test_changing_an_agent_without_the_permission_is_refused(client, operator, make_agent):
    echo = make_agent("echo")

    response = client.post(reverse("executions:agent-enabled", args=[echo.pk]), {"enabled": "0"})

    assert response.status_code == 403
    assert AgentConfig.objects.get(pk=echo.pk).enabled is True


def test_the_workers_page_shows_what_each_process_runs_and_marks_stale_ones(get, operator, make_agent, monkeypatch):
    fill([make_agent("echo")], per_agent=1)
    monkeypatch.setattr("socket.gethostname", lambda: "host-a")
    heartbeat_beat(role="worker", name="worker:host-a:4000", process_ids=[4100, 4242])
    heartbeat_beat(role="dispatcher", name="dispatcher:host-b:77")
    Heartbeat.objects.filter(name="dispatcher:host-b:77").update(beat_at=timezone.now() - timedelta(minutes=5))
    running = Execution.objects.get(state=S.RUNNING)

    html = get("executions:workers")

    worker = _row(html, f"worker-{Heartbeat.objects.get(role='worker').pk}")
    assert "host-a" in worker and f"#{running.pk} " in worker and "stale" not in worker
    dispatcher = _row(html, f"worker-{Heartbeat.objects.get(role='dispatcher').pk}")
    assert "stale" in dispatcher and f"#{running.pk} " not in dispatcher


@pytest.mark.parametrize(
    ("name", "queries"), [("executions:overview", 8), ("executions:agents", 9), ("executions:workers", 6)]
)
def test_the_query_count_does_not_grow_with_the_rows(
    client, operator, make_agent, django_assert_num_queries, name, queries
):
    agents = [make_agent("echo", name=f"agent-{n}") for n in range(2)]
    fill(agents, per_agent=2)
    with django_assert_num_queries(queries):
        assert client.get(reverse(name)).status_code == 200

    fill(agents + [make_agent("echo", name=f"agent-{n}") for n in range(2, 6)], per_agent=12)
    with django_assert_num_queries(queries):
        assert client.get(reverse(name)).status_code == 200


def _svg(html: str, svg_id: str) -> str:
    return re.search(rf'<svg id="{svg_id}".*?</svg>', html, re.S).group(0)


def _row(html: str, row_id: str) -> str:
    return re.search(rf'<tr id="{row_id}".*?</tr>', html, re.S).group(0)
