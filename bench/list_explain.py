#!/usr/bin/env python
"""EXPLAIN (PostgreSQL: ANALYZE, BUFFERS) of the list's slow queries on the kept million-row database.

    .venv/bin/python bench/list_explain.py > bench/results/dashboard-all-explain-sqlite.txt
    .venv/bin/python bench/list_explain.py --database-url postgres://postgres@127.0.0.1:5432/ \\
        > bench/results/dashboard-all-explain-postgres.txt

For the operator and the plain user, with ``agent=`` and with ``q=``: the page's
rows (``listing.execution_page``) and the per-state counts (``listing.state_counts``),
each run once to warm, then once with its queries captured; every query over
10 ms is printed with its plan. The database must be filled already
(``bench/dashboard_all.py`` or ``bench/api_list.py`` fills it).
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_db import AGENTS, MEASURED_USER, OPERATOR, SEARCH_WORD, configure  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    args.fresh = False
    engine, where, kept = configure(args)
    if not kept:
        raise SystemExit(f"{where} is not filled: run bench/dashboard_all.py first")
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from executions import access, listing

    explain = "EXPLAIN (ANALYZE, BUFFERS) " if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN "
    print(f"{engine}: {where}")
    for who in (MEASURED_USER, OPERATOR):
        visible = access.executions_visible_to(User.objects.get(username=who))
        for filters in (listing.ExecutionFilters(agent=AGENTS[3]), listing.ExecutionFilters(text=SEARCH_WORD)):
            for what, call in (
                ("page", lambda filters=filters, visible=visible: listing.execution_page(visible, filters)),
                ("counts", lambda filters=filters, visible=visible: listing.state_counts(visible, filters)),
            ):
                call()
                with CaptureQueriesContext(connection) as captured:
                    began = time.perf_counter()
                    call()
                    took = (time.perf_counter() - began) * 1000
                shown = f"agent={filters.agent}" if filters.agent else f"q={filters.text}"
                print(f"=== {who} {shown} {what}: {took:.1f} ms, {len(captured.captured_queries)} queries")
                for query in captured.captured_queries:
                    if query["sql"].startswith("EXPLAIN") or float(query["time"]) < 0.010:
                        continue
                    print(f"{float(query['time']) * 1000:.0f} ms: {query['sql']}")
                    with connection.cursor() as cursor:
                        cursor.execute(explain + query["sql"])
                        for row in cursor.fetchall():
                            print("   ", *row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
