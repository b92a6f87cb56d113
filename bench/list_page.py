#!/usr/bin/env python
"""The executions list page over 1,000,000 executions: first, filtered, deep and searched pages.

    .venv/bin/python bench/list_page.py                     # SQLite, 1,000,000 executions
    .venv/bin/python bench/list_page.py --quick             # 100,000 executions, 20 samples
    .venv/bin/python bench/list_page.py --database-url postgres://postgres@127.0.0.1:5432/symphony \\
        --output bench/results/list-page-postgres.json      # PostgreSQL

It uses bench/api_list.py's kept database (``bench/bench_db.py``), filled once.
Each page is fetched through Django's test client with ``DJANGO_DEBUG=0``,
logged in as an operator (sees all) and as a plain user (a tenth of the rows),
``--samples`` times after a warm-up: the whole page (table, counts, filter form)
as a browser first loads it, and the HTMX swap of the results when a filter
changes. Then the websocket's push for a filtered page (what each live update
renders), called directly. p95 targets: 100 ms for every page.
"""

import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import kept_db, report  # noqa: E402
from bench.api_list import BUDGET_SECONDS, client_for, p95, timed  # noqa: E402
from bench.bench_db import (  # noqa: E402
    AGENTS,
    MEASURED_TAG,
    MEASURED_USER,
    OPERATOR,
    SEARCH_WORD,
)

RESULTS = ROOT / "bench" / "results" / "list-page.json"
TARGET_MS = 100.0
HTMX = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "execution-results"}


def pages(visible) -> dict[str, str]:
    oldest = visible.order_by("id").values_list("id", flat=True)[1000]  # 1,000 rows from the end
    newest = visible.order_by("-id").values_list("created_at", flat=True).first()
    return {
        "first page": "",
        "deep page (before=)": f"before={oldest}",
        "state=FAILED": "state=FAILED",
        "agent=": f"agent={AGENTS[3]}",
        "tag=": f"tag={MEASURED_TAG}",
        "created today": f"created_from={newest:%Y-%m-%d}",
        "submitted_by=": f"submitted_by={MEASURED_USER}",
        f"q={SEARCH_WORD} (1% of rows)": f"q={SEARCH_WORD}",
        "q=weekly (25%)": "q=weekly",
        "q=zzzz (none)": "q=zzzz",
        "q= + state=FAILED": f"q={SEARCH_WORD}&state=FAILED",
        "2-letter q= (refused: filters nothing)": "q=zq",
    }


def page_figures(
    samples: int, which: set[str] | None = None, htmx: bool = True, budget: float = BUDGET_SECONDS
) -> tuple[list[dict], dict]:
    """Each page of ``pages()`` (or those named in ``which``), whole and, ``htmx``, as the filter's swap;
    fewer samples (at least 5) for a figure that passes ``budget`` seconds."""
    from django.contrib.auth.models import User

    from executions.models import Execution

    rows, details = [], {}
    user = User.objects.get(username=MEASURED_USER)
    for who, username, visible in (
        ("operator", OPERATOR, Execution.objects.all()),
        ("user", MEASURED_USER, Execution.objects.filter(submitted_by=user)),
    ):
        client = client_for(username)
        details[who] = {}
        for what, query in pages(visible).items():
            if which is not None and what not in which:
                continue
            url = f"/?{query}"
            for how, headers in (("page", {}), ("htmx swap", HTMX)):
                if how == "htmx swap" and (not htmx or query not in ("", f"q={SEARCH_WORD}", "state=FAILED")):
                    continue
                response = client.get(url, **headers)
                if response.status_code != 200:
                    raise SystemExit(f"GET {url}: {response.status_code}")
                shown = response.content.decode().count('<tr id="execution-')
                times = timed(
                    lambda url=url, client=client, headers=headers: client.get(url, **headers), samples, budget=budget
                )
                label = f"list {how}, {what}, {who}: p95"
                rows.append(report.row(label, p95(times), "ms", f"<= {TARGET_MS:g}"))
                details[who][f"{how} {what}"] = {
                    "url": url,
                    "rows_shown": shown,
                    "p50_ms": round(statistics.median(times), 2),
                    "p95_ms": round(p95(times), 2),
                    "samples": len(times),
                }
    return rows, details


def push_figures(samples: int) -> list[dict]:
    """What one live update of a filtered list costs the web process (the consumer's render)."""
    from django.contrib.auth.models import User
    from django.http import QueryDict

    from executions.consumers import _list_push

    operator = User.objects.get(username=OPERATOR)
    rows = []
    for what, query in (("first page", ""), ("q= + agent=", f"q={SEARCH_WORD}&agent={AGENTS[0]}")):
        params = QueryDict(query)
        _, shown = _list_push.func(operator, params, None, set())
        times = timed(lambda params=params, shown=shown: _list_push.func(operator, params, shown, {shown[0]}), samples)
        rows.append(report.row(f"live push, {what}, operator: p95", p95(times), "ms", f"<= {TARGET_MS:g}"))
    return rows


def query_plans() -> dict:
    from django.contrib.auth.models import User

    from executions import access
    from executions.list_page import ExecutionFilterForm
    from executions.listing import COUNT_CAP

    operator = User.objects.get(username=OPERATOR)
    visible = access.executions_visible_to(operator)
    plans = {}
    for what, query in pages(visible).items():
        from django.http import QueryDict

        filters = ExecutionFilterForm(QueryDict(query)).filters()
        rows = filters.apply(visible).select_related("task", "agent", "submitted_by").order_by("-id")[:51]
        counted = filters.without_states().apply_all_but_state(visible).filter(state="FAILED").values("id")
        plans[what] = {"page": rows.explain(), "one state's count": counted[: COUNT_CAP + 1].explain()}
    return plans


def main() -> int:
    args = kept_db.parse_args(__doc__.split("\n\n")[0], RESULTS)
    engine, where, fill_seconds = kept_db.open_kept(args)
    rows, details = page_figures(args.samples)
    rows += push_figures(args.samples)
    if fill_seconds is not None:
        rows.append(report.row(f"fill {args.rows:,} executions ({engine})", fill_seconds, "s"))
    report.print_rows(rows)
    config = {"engine": engine, "rows": args.rows, "samples": args.samples, "database": where}
    path = report.write(
        args.output,
        name="list-page",
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
