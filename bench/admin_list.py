#!/usr/bin/env python
"""The admin's change lists over 1,000,000 executions, timed through Django's test client.

    .venv/bin/python bench/admin_list.py                    # SQLite, 1,000,000 executions
    .venv/bin/python bench/admin_list.py --quick            # 100,000 executions, 20 samples
    .venv/bin/python bench/admin_list.py --database-url postgres://postgres@127.0.0.1:5432/symphony \\
        --output bench/results/admin-list-postgres.json     # PostgreSQL

Issue 10 measured the execution list at 9,168 ms and a search at 4,288 ms (SQLite,
1,000,000 rows). Uses the kept database of ``bench/bench_db.py`` (filled once);
measured as a superuser with ``DJANGO_DEBUG=0``: the execution list, a page deep
in it, filtered to FAILED and to an agent, searched by id and by agent name, an
execution's change page, and the task and event lists.
"""

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import kept_db, report  # noqa: E402
from bench.api_list import p95, timed  # noqa: E402
from bench.bench_db import AGENTS  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "admin-list.json"
TARGET_MS = 100.0
ADMIN = "bench-admin"


def figures(samples: int) -> tuple[list[dict], dict]:
    from django.contrib.auth.models import User
    from django.test import Client

    from executions.models import Execution
    from routing.models import AgentConfig

    admin = User.objects.filter(username=ADMIN).first() or User.objects.create_superuser(ADMIN, password=None)
    client = Client()
    client.force_login(admin)
    some = Execution.objects.order_by("-id").values_list("id", flat=True)[5000]
    agent = AgentConfig.objects.get(name=AGENTS[3]).pk
    base = "/admin/executions/"
    urls = {
        "execution list": f"{base}execution/",
        "execution list, page 50": f"{base}execution/?p=50",
        "execution list, state=FAILED": f"{base}execution/?state__exact=FAILED",
        "execution list, agent": f"{base}execution/?agent__id__exact={agent}",
        "execution search, an id": f"{base}execution/?q={some}",
        "execution search, an agent name": f"{base}execution/?q={AGENTS[3]}",
        "execution change page": f"{base}execution/{some}/change/",
        "task list": f"{base}task/",
        "event list": f"{base}executionevent/",
    }
    rows, details = [], {}
    try:
        for what, url in urls.items():
            response = client.get(url)
            if response.status_code != 200:
                raise SystemExit(f"GET {url}: {response.status_code}")
            times = timed(lambda url=url: client.get(url), samples)
            rows.append(report.row(f"admin {what}: p95", p95(times), "ms", f"<= {TARGET_MS:g}"))
            details[what] = {"url": url, "p50_ms": round(statistics.median(times), 2), "p95_ms": round(p95(times), 2)}
    finally:
        admin.delete()  # the kept database stays as filled
    return rows, details


def main() -> int:
    args = kept_db.parse_args(__doc__.split("\n\n")[0], RESULTS, samples=30)
    engine, where, _ = kept_db.open_kept(args)
    rows, details = figures(args.samples)
    report.print_rows(rows)
    config = {"engine": engine, "rows": args.rows, "samples": args.samples, "database": where}
    path = report.write(
        args.output,
        name="admin-list",
        config=config,
        rows=rows,
        pages=details,
        machine=report.machine(args.database_url),
    )
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
