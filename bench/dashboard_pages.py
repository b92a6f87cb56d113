#!/usr/bin/env python
"""The system pages over 1,000,000 executions: overview, agents, workers and /metrics, through Django's test client.

    .venv/bin/python bench/dashboard_pages.py                  # SQLite, 1,000,000 executions
    .venv/bin/python bench/dashboard_pages.py --quick          # 100,000 executions, 20 samples
    .venv/bin/python bench/dashboard_pages.py --database-url postgres://postgres@127.0.0.1:5432/symphony \\
        --output bench/results/dashboard-pages-postgres.json   # PostgreSQL

The database is ``bench/bench_db.py``'s, filled once and kept (the same one as
``bench/api_list.py``). Before timing, the rollup catches up over the last eight
days of it, as a dispatcher would on its first start (timed: ``rollup catch-up``),
and a worker cluster's heartbeat is written with leases on some RUNNING rows, so
the workers page has something to match. Each page is requested ``--samples``
times after a warm-up, as the operator, with ``DJANGO_DEBUG=0``; p95 in ms.
"""

import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import kept_db, report  # noqa: E402
from bench.api_list import client_for, p95, timed  # noqa: E402
from bench.bench_db import OPERATOR  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "dashboard-pages.json"
TARGET_MS = 100.0
LEASED = 40  # RUNNING rows given a lease by the bench's pretend worker cluster
PAGES = {
    "overview, last hour": "/overview/?window=hour",
    "overview, last day": "/overview/?window=day",
    "overview, last week": "/overview/?window=week",
    "overview, HTMX poll": "/overview/?window=hour",
    "agents, last day": "/agents/?window=day",
    "agents, last week": "/agents/?window=week",
    "workers": "/workers/",
    "/metrics": "/metrics",
}


def pretend_worker() -> list[int]:
    """A worker cluster's heartbeat, and leases on the newest RUNNING rows in its processes' names."""
    import socket

    from django.utils import timezone

    from executions.heartbeats import heartbeat_beat
    from executions.models import Execution

    heartbeat_beat(role="worker", name="worker:bench:1", process_ids=[2, 3])
    host = socket.gethostname()
    ids = list(Execution.objects.filter(state="RUNNING").order_by("-id").values_list("pk", flat=True)[:LEASED])
    for n, pk in enumerate(ids):
        Execution.objects.filter(pk=pk).update(
            lease_owner=f"{host}:{2 + n % 2}:bench:{n}", lease_expires_at=timezone.now() + timezone.timedelta(hours=1)
        )
    return ids


def forget_worker(ids: list[int]) -> None:
    from executions.models import Execution, Heartbeat

    Execution.objects.filter(pk__in=ids).update(lease_owner="", lease_expires_at=None)
    Heartbeat.objects.filter(name="worker:bench:1").delete()


def catch_up() -> list[dict]:
    """The rollup over the last eight days, as a dispatcher's first start makes it; then one pass more."""
    from executions.rollup import rollup_catch_up

    began = time.perf_counter()
    passes = rollup_catch_up()
    rows = [report.row(f"rollup catch-up over 8 days ({passes} passes)", time.perf_counter() - began, "s")]
    began = time.perf_counter()
    rollup_catch_up()
    rows.append(report.row("rollup pass when caught up", (time.perf_counter() - began) * 1000, "ms"))
    return rows


def page_figures(samples: int) -> tuple[list[dict], dict]:
    client = client_for(OPERATOR)
    rows, details = [], {}
    for what, url in PAGES.items():
        headers = {"HX-Request": "true"} if "HTMX" in what else {}

        def get(url=url, headers=headers):
            response = client.get(url, headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"GET {url}: {response.status_code} {response.content[:300]!r}")

        times = timed(get, samples)
        rows.append(report.row(f"GET {what}: p95", p95(times), "ms", f"<= {TARGET_MS:g}"))
        details[what] = {
            "url": url,
            "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(p95(times), 2),
            "samples": len(times),
        }
    return rows, details


def query_plans() -> dict:
    from executions import stats
    from executions.models import Execution
    from executions.state import ACTIVE

    return {
        "live counts": Execution.objects.filter(state__in=stats.LIVE_STATES)
        .values_list("agent_id", "state")
        .order_by()
        .explain(),
        "recent failures": Execution.objects.filter(state="FAILED").order_by("-id")[:10].explain(),
        "leases": Execution.objects.filter(state__in=ACTIVE, lease_expires_at__isnull=False)
        .order_by("-lease_expires_at")[:500]
        .explain(),
    }


def main() -> int:
    args = kept_db.parse_args(__doc__.split("\n\n")[0], RESULTS)
    engine, where, fill_seconds = kept_db.open_kept(args)
    from executions.models import ExecutionEvent

    rows = []
    if fill_seconds is not None:
        rows.append(report.row(f"fill {args.rows:,} executions ({engine})", fill_seconds, "s"))
    rows += catch_up()
    leased = pretend_worker()
    try:
        page_rows, details = page_figures(args.samples)
    finally:
        forget_worker(leased)
    rows += page_rows
    report.print_rows(rows)
    config = {
        "engine": engine,
        "rows": args.rows,
        "events": ExecutionEvent.objects.count() if args.rows <= 100_000 else "about ten per execution (bench_db.py)",
        "samples": args.samples,
        "database": where,
    }
    path = report.write(
        args.output,
        name="dashboard-pages",
        config=config,
        rows=rows,
        pages=details,
        plans=query_plans(),
        machine=report.machine(args.database_url),
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
