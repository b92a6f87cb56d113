#!/usr/bin/env python
"""Every page of issue 10's figures on one kept database: 1,000,000 executions and about 10,000,000 events.

    .venv/bin/python bench/dashboard_all.py                  # SQLite
    .venv/bin/python bench/dashboard_all.py --database-url postgres://postgres@127.0.0.1:5432/ \\
        --output bench/results/dashboard-all-postgres.json   # PostgreSQL
    .venv/bin/python bench/dashboard_all.py --quick          # 100,000 executions, 20 samples

The database is ``bench/bench_db.py``'s, filled once and kept (the one of
``api_list.py``, ``list_page.py`` and ``dashboard_pages.py``). The rollup catches
up first (``dashboard_pages.catch_up``) and a worker cluster's heartbeat is
written, as ``dashboard_pages.py`` does. Then, through Django's test client with
``DJANGO_DEBUG=0``, ``--samples`` requests after a warm-up (fewer, at least 5, only
for a figure that passes 120 s), p95 in ms:

- the list (``list_page.page_figures``): first page, ``state=FAILED``, an agent,
  a deep ``before=`` page and a text search, as the operator and as a plain user;
- the execution page: a recent execution with about ten events and the one the
  fill gave 5,000 log events, as the operator and as its owner;
- overview, agents, workers and ``/metrics`` (``dashboard_pages.page_figures``).

Each page's queries are also captured once (SQL and time, slowest first) with
the plans of the execution page's; the load average is written beside the figures.
"""

import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import dashboard_pages, kept_db, list_page, report  # noqa: E402
from bench.api_list import client_for, p95, timed  # noqa: E402
from bench.bench_db import HEAVY_LOG_EVENTS, MEASURED_USER, OPERATOR, SEARCH_WORD  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "dashboard-all.json"
TARGET_MS = 100.0
BUDGET_SECONDS = 120.0  # per figure: even a page of a second gets its samples
LIST_PAGES = {"first page", "state=FAILED", "agent=", "deep page (before=)", f"q={SEARCH_WORD} (1% of rows)"}


def measured_executions() -> dict[str, tuple[int, int]]:
    """(execution id, its owner's user id) of a recent run with about ten events and of the fill's long one."""
    from django.db.models import Count

    from executions.models import Execution, ExecutionEvent

    newest = Execution.objects.order_by("-id").values_list("id", flat=True).first()
    counts = (
        ExecutionEvent.objects.filter(execution_id__gt=newest - 200)
        .values("execution_id")
        .annotate(n=Count("id"))
        .order_by("-n")
    )
    heavy = counts.filter(n__gte=HEAVY_LOG_EVENTS).values_list("execution_id", flat=True).first()
    recent = (
        Execution.objects.filter(state="COMPLETED", submitted_by__username=MEASURED_USER, id__lt=heavy)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    owners = dict(Execution.objects.filter(pk__in=[recent, heavy]).values_list("pk", "submitted_by_id"))
    return {
        f"recent ({ExecutionEvent.objects.filter(execution_id=recent).count()} events)": (recent, owners[recent]),
        f"long ({ExecutionEvent.objects.filter(execution_id=heavy).count():,} events)": (heavy, owners[heavy]),
    }


def execution_figures(samples: int) -> tuple[list[dict], dict]:
    from django.contrib.auth.models import User

    rows, details = [], {}
    for what, (pk, owner) in measured_executions().items():
        url = f"/executions/{pk}/"
        for who, username in (("operator", OPERATOR), ("owner", User.objects.get(pk=owner).username)):
            client = client_for(username)

            def get(client=client, url=url):
                response = client.get(url)
                if response.status_code != 200:
                    raise SystemExit(f"GET {url}: {response.status_code} {response.content[:300]!r}")

            times = timed(get, samples, budget=BUDGET_SECONDS)
            rows.append(report.row(f"execution page, {what}, {who}: p95", p95(times), "ms", f"<= {TARGET_MS:g}"))
            details[f"{what}, {who}"] = {
                "url": url,
                "p50_ms": round(statistics.median(times), 2),
                "p95_ms": round(p95(times), 2),
                "samples": len(times),
            }
    return rows, details


def query_log(urls: dict[str, tuple[str, str]]) -> dict:
    """Each page's queries, once, as the operator or user named: time and SQL, slowest first."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    logs = {}
    for what, (username, url) in urls.items():
        client = client_for(username)
        client.get(url)
        with CaptureQueriesContext(connection) as captured:
            client.get(url)
        queries = sorted(captured.captured_queries, key=lambda q: -float(q["time"]))
        logs[what] = {
            "url": url,
            "queries": len(queries),
            "ms": round(sum(float(q["time"]) for q in queries) * 1000, 1),
            "slowest": [{"ms": round(float(q["time"]) * 1000, 1), "sql": q["sql"][:600]} for q in queries[:4]],
        }
    return logs


def execution_plans(pk: int) -> dict:
    from executions import selectors
    from executions.models import EventKind, ExecutionEvent

    last = selectors.execution_last_event_id(execution_id=pk)
    logs = ExecutionEvent.objects.filter(execution_id=pk, kind__in=selectors.LOG_KINDS, id__lte=last)
    return {
        "last event id": ExecutionEvent.objects.filter(execution_id=pk).order_by("-id").values("id")[:1].explain(),
        "history": ExecutionEvent.objects.filter(execution_id=pk, kind=EventKind.STATE).order_by("id").explain(),
        "log tail": logs.order_by("-id")[: selectors.PAGE_LOG_EVENTS].explain(),
        "log omitted count": logs.filter(id__lt=last).values("id").explain(),
    }


def main() -> int:
    args = kept_db.parse_args(__doc__.split("\n\n")[0], RESULTS)
    engine, where, fill_seconds = kept_db.open_kept(args)
    rows = []
    if fill_seconds is not None:
        rows.append(report.row(f"fill {args.rows:,} executions and their events ({engine})", fill_seconds, "s"))
    from executions.models import Execution, ExecutionEvent

    stored = {"executions": Execution.objects.count(), "events": ExecutionEvent.objects.count()}
    print(f"  {stored['executions']:,} executions, {stored['events']:,} events")
    rows += dashboard_pages.catch_up()
    load = {"before": os.getloadavg()}
    leased = dashboard_pages.pretend_worker()
    try:
        list_rows, list_details = list_page.page_figures(
            args.samples, which=LIST_PAGES, htmx=False, budget=BUDGET_SECONDS
        )
        load["after list"] = os.getloadavg()
        execution_rows, execution_details = execution_figures(args.samples)
        load["after execution pages"] = os.getloadavg()
        system_rows, system_details = dashboard_pages.page_figures(args.samples)
        load["after system pages"] = os.getloadavg()
        measured = measured_executions()
        urls = {f"execution page, {what}": (OPERATOR, f"/executions/{pk}/") for what, (pk, _) in measured.items()}
        urls.update({what: (OPERATOR, url) for what, url in dashboard_pages.PAGES.items() if "HTMX" not in what})
        for who, pages in list_details.items():
            username = OPERATOR if who == "operator" else MEASURED_USER
            urls.update({f"list {what}, {who}": (username, page["url"]) for what, page in pages.items()})
        queries = query_log(urls)
    finally:
        dashboard_pages.forget_worker(leased)
    rows += list_rows + execution_rows + system_rows
    report.print_rows(rows)
    print(f"  load average (1, 5, 15 min): {load}")
    heavy = next(pk for what, (pk, _) in measured.items() if what.startswith("long"))
    config = {"engine": engine, **stored, "samples": args.samples, "database": where, "load_average": load}
    path = report.write(
        args.output,
        name="dashboard-all",
        config=config,
        rows=rows,
        pages={"list": list_details, "execution": execution_details, "system": system_details},
        queries=queries,
        plans={
            "list": list_page.query_plans(),
            "system": dashboard_pages.query_plans(),
            "execution (long)": execution_plans(heavy),
        },
        machine=report.machine(args.database_url),
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
