#!/usr/bin/env python
"""The JSON API over 1,000,000 executions: list pages, filters and submits, timed through Django's test client.

    .venv/bin/python bench/api_list.py                      # SQLite, 1,000,000 executions
    .venv/bin/python bench/api_list.py --quick              # 100,000 executions, 20 samples
    .venv/bin/python bench/api_list.py --database-url postgres://postgres@127.0.0.1:5432/symphony \\
        --output bench/results/api-list-postgres.json       # PostgreSQL

The database is filled once and kept (``bench/bench_db.py``: where, how, and when a
kept one is reused); ``--fresh`` fills again anyway.

Measured in this process with ``DJANGO_DEBUG=0`` (``symphony.test_settings``,
whose throttles are out of reach), for an operator (sees all) and a plain user
(sees the tenth of the rows they submitted), each request repeated ``--samples``
times after a warm-up: the first page (limit 50), a deep cursor page (``before=``
an id near the user's oldest), ``state=FAILED``, ``agent=``, ``tag=``, ``q=``; then a
submit through ``POST /api/v1/executions`` against ``services.execution_submit``
called in process, both p50, and their ratio. The submitted rows are deleted at
the end, so the kept database stays as filled.
"""

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import kept_db, report  # noqa: E402
from bench.bench_db import (  # noqa: E402
    AGENTS,
    MEASURED_TAG,
    MEASURED_USER,
    OPERATOR,
    SEARCH_WORD,
)

RESULTS = ROOT / "bench" / "results" / "api-list.json"
TARGET_PAGE_MS = 100.0  # p95 of the first page and of a deep cursor page
TARGET_SUBMIT_RATIO = 2.0  # API submit p50 / in-process submit p50
BUDGET_SECONDS = 20.0  # per figure: a query that takes seconds is measured on fewer samples


# Set-up ---------------------------------------------------------------------------------


# Measurements ---------------------------------------------------------------------------


def timed(call, samples: int, warmup: int = 3, budget: float = BUDGET_SECONDS) -> list[float]:
    """Milliseconds of ``samples`` calls; fewer (at least 5) when they pass ``budget`` seconds in all."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + budget
    while len(times) < samples and (len(times) < 5 or time.perf_counter() < deadline):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return times


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20, method="inclusive")[-1]


def client_for(username: str):
    from django.contrib.auth.models import User
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username=username))
    return client


def get_ok(client, url: str) -> dict:
    response = client.get(url)
    if response.status_code != 200:
        raise SystemExit(f"GET {url}: {response.status_code} {response.content[:300]!r}")
    return response.json()


def list_figures(samples: int) -> tuple[list[dict], dict]:
    from django.contrib.auth.models import User

    from executions.models import Execution

    rows, details = [], {}
    user = User.objects.get(username=MEASURED_USER)
    for who, username, visible in (
        ("operator", OPERATOR, Execution.objects.all()),
        ("user", MEASURED_USER, Execution.objects.filter(submitted_by=user)),
    ):
        client = client_for(username)
        oldest = visible.order_by("id").values_list("id", flat=True)[1000]  # a deep page: 1,000 rows from the end
        queries = {
            "first page": "limit=50",
            "deep cursor page": f"limit=50&before={oldest}",
            "state=FAILED": "limit=50&state=FAILED",
            "agent=": f"limit=50&agent={AGENTS[3]}",
            "tag=": f"limit=50&tag={MEASURED_TAG}",
            "q=": f"limit=50&q={SEARCH_WORD}",
        }
        details[who] = {"visible": visible.count()}
        for what, query in queries.items():
            url = f"/api/v1/executions?{query}"
            page = get_ok(client, url)
            times = timed(lambda url=url, client=client: client.get(url), samples)
            target = f"<= {TARGET_PAGE_MS:g}" if what in ("first page", "deep cursor page") else None
            rows.append(report.row(f"GET executions, {what}, {who}: p95", p95(times), "ms", target))
            details[who][what] = {
                "url": url,
                "items": len(page["items"]),
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(p95(times), 2),
                "samples": len(times),
            }
    return rows, details


def submit_figures(samples: int) -> tuple[list[dict], dict]:
    from django.contrib.auth.models import User
    from django.test import Client

    from executions import services
    from routing.models import AgentConfig
    from symphony.tokens import token_create

    client = client_for(OPERATOR)
    operator = User.objects.get(username=OPERATOR)
    token, raw = token_create(user=operator, name="bench")
    scripted = Client(headers={"Authorization": f"Bearer {raw}"})
    agent = AgentConfig.objects.get(name=AGENTS[0])
    body = {"agent": AGENTS[0], "input": {"query": "Summarise this"}, "tags": ["bench"]}

    def through(api_client):
        def post():
            response = api_client.post("/api/v1/executions", data=body, content_type="application/json")
            if response.status_code != 201:
                raise SystemExit(f"POST /api/v1/executions: {response.status_code} {response.content[:300]!r}")

        return post

    def in_process():
        services.execution_submit(agent=agent, input_data=body["input"], tags=body["tags"], submitted_by=operator)

    api_times, token_times, service_times = [], [], []
    for _ in range(2):  # interleaved halves, so that a slow moment of the machine falls on all three
        api_times += timed(through(client), samples // 2)
        token_times += timed(through(scripted), samples // 2)
        service_times += timed(in_process, samples // 2)
    token.delete()
    api, by_token = statistics.median(api_times), statistics.median(token_times)
    service = statistics.median(service_times)
    rows = [
        report.row("POST executions p50 (session)", api, "ms"),
        report.row("POST executions p50 (API token)", by_token, "ms"),
        report.row("services.execution_submit p50 (in process)", service, "ms"),
        report.row("submit: API (session) / in process", api / service, "x", f"<= {TARGET_SUBMIT_RATIO:g}"),
        report.row("submit: API (token) / in process", by_token / service, "x", f"<= {TARGET_SUBMIT_RATIO:g}"),
    ]
    return rows, {
        "api_p50_ms": round(api, 3),
        "token_p50_ms": round(by_token, 3),
        "service_p50_ms": round(service, 3),
        "samples": len(api_times),
    }


def forget_submits(rows: int) -> None:
    """Delete what the submit figures added, so the kept database stays as filled."""
    from django_q.models import OrmQ

    from executions.models import Execution, Task

    Execution.objects.filter(pk__gt=rows).delete()
    Task.objects.filter(pk__gt=rows).delete()
    OrmQ.objects.all().delete()


def query_plans() -> dict:
    """EXPLAIN of the list's queries as the operator runs them, to read beside the figures."""
    from django.contrib.auth.models import User

    from executions import access
    from executions.listing import ExecutionFilters

    operator = User.objects.get(username=OPERATOR)
    visible = access.executions_visible_to(operator)
    plans = {}
    for what, filters in {
        "first page": ExecutionFilters(),
        "state=FAILED": ExecutionFilters(states=("FAILED",)),
        "agent=": ExecutionFilters(agent=AGENTS[3]),
        "tag=": ExecutionFilters(tag=MEASURED_TAG),
        "q=": ExecutionFilters(text=SEARCH_WORD),
    }.items():
        rows = filters.apply(visible).select_related("task", "agent", "submitted_by").order_by("-id")[:51]
        plans[what] = rows.explain()
    return plans


def main() -> int:
    args = kept_db.parse_args(__doc__.split("\n\n")[0], RESULTS)
    engine, where, fill_seconds = kept_db.open_kept(args)
    try:
        list_rows, list_details = list_figures(args.samples)
        submit_rows, submit_details = submit_figures(args.samples)
    finally:
        forget_submits(args.rows)
    plans = query_plans()
    rows = list_rows + submit_rows
    if fill_seconds is not None:
        rows.append(report.row(f"fill {args.rows:,} executions ({engine})", fill_seconds, "s"))
    report.print_rows(rows)
    config = {"engine": engine, "rows": args.rows, "samples": args.samples, "database": where}
    path = report.write(
        args.output,
        name="api-list",
        config=config,
        rows=rows,
        lists=list_details,
        submit=submit_details,
        plans=plans,
        machine=report.machine(args.database_url),
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
