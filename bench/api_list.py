#!/usr/bin/env python
"""The JSON API over 1,000,000 executions: list pages, filters and submits, timed through Django's test client.

    .venv/bin/python bench/api_list.py                      # SQLite, 1,000,000 executions
    .venv/bin/python bench/api_list.py --quick              # 100,000 executions, 20 samples
    .venv/bin/python bench/api_list.py --database-url postgres://postgres@127.0.0.1:5432/symphony \\
        --output bench/results/api-list-postgres.json       # PostgreSQL

The database is filled once and kept (SQLite: a file in bench/.data/, which git
ignores; PostgreSQL: a database ``symphony_bench_api_<rows>_<key>`` left on the
server), named after the row count and a hash of every migration, so a rerun
reuses it and a schema change fills a new one; ``--fresh`` fills again anyway.
The fill writes raw rows (SQLite: ``executemany`` with ``synchronous=OFF`` and the
indexes built after; PostgreSQL: ``COPY`` with the foreign-key triggers off):
users, agents, a task per execution with tags and a name, and executions in a
realistic mix of states spread over a year. Execution events are not filled: no
list reads them.

Measured in this process with ``DJANGO_DEBUG=0`` (``symphony.test_settings``,
whose throttles are out of reach), for an operator (sees all) and a plain user
(sees the tenth of the rows they submitted), each request repeated ``--samples``
times after a warm-up: the first page (limit 50), a deep cursor page (``before=``
an id near the user's oldest), ``state=FAILED``, ``agent=``, ``tag=``, ``q=``; then a
submit through ``POST /api/v1/executions`` against ``services.execution_submit``
called in process, both p50, and their ratio. The submitted rows are deleted at
the end, so the kept database stays as filled.
"""

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "api-list.json"
DATA = ROOT / "bench" / ".data"
FILL_VERSION = 1  # bump when the fill below changes what it writes
TARGET_PAGE_MS = 100.0  # p95 of the first page and of a deep cursor page
TARGET_SUBMIT_RATIO = 2.0  # API submit p50 / in-process submit p50
USERS = 10  # plain users; each submits a tenth of the executions, but a twentieth are nobody's
OPERATOR = "bench-operator"
MEASURED_USER = "bench-user-3"
STATES = {  # share of all executions
    "COMPLETED": 0.80,
    "FAILED": 0.08,
    "CANCELLED": 0.03,
    "TIMED_OUT": 0.01,
    "QUEUED": 0.04,
    "RUNNING": 0.02,
    "PENDING": 0.01,
    "PAUSED": 0.005,
    "PREPARING": 0.005,
}
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}
AGENTS = [f"bench-agent-{n:02d}" for n in range(12)]
TAGS = [f"tag-{n:02d}" for n in range(40)]
MEASURED_TAG = "tag-07"  # about 2% of tasks
VERBS = ["Summarise", "Translate", "Classify", "Review", "Extract", "Compare", "Rewrite", "Score"]
THINGS = ["report", "invoice", "ticket", "article", "contract", "email", "transcript", "changelog", "survey"]
SEARCH_WORD = "quarterly"  # in about 1% of task names
BATCH = 50_000
BUDGET_SECONDS = 20.0  # per figure: a query that takes seconds is measured on fewer samples
FILLED = "filled by bench/api_list.py"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="executions to fill (default 1,000,000)")
    parser.add_argument("--samples", type=int, default=50, help="timed requests per figure (default 50)")
    parser.add_argument("--quick", action="store_true", help="--rows 100000 --samples 20")
    parser.add_argument("--database-url", default="", help="PostgreSQL server: the bench database is kept on it")
    parser.add_argument("--redis-url", default="", help="accepted for bench/suite.py; not used")
    parser.add_argument("--fresh", action="store_true", help="fill again even if a filled database is kept")
    parser.add_argument("--output", default=str(RESULTS), help="JSON results")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.samples = 100_000, 20
    return args


# Set-up ---------------------------------------------------------------------------------


def schema_key() -> str:
    """A hash of every migration and of this fill: a kept database is reused only while it matches."""
    digest = hashlib.sha256(f"fill {FILL_VERSION}".encode())
    for path in sorted(ROOT.glob("*/migrations/0*.py")):
        digest.update(path.relative_to(ROOT).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:10]


def configure(args) -> tuple[str, str, bool]:
    """Point Django at the kept database; return (engine label, where it is, whether it is filled).

    A database is kept only once its fill finished (SQLite: a ``.filled`` file beside it;
    PostgreSQL: the database's comment); one left half-filled is made again.
    """
    name = f"symphony_bench_api_{args.rows}_{schema_key()}"
    os.environ.pop("REDIS_URL", None)
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "symphony.test_settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_ALLOWED_HOSTS": "testserver,localhost",
            "SYMPHONY_VAR_DIR": str(DATA / "var"),
            "SYMPHONY_LOG_LEVEL": "WARNING",
        }
    )
    if args.database_url:
        import psycopg

        from bench.install import with_path

        with psycopg.connect(with_path(args.database_url, "postgres"), autocommit=True) as admin:
            found = admin.execute(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", [name]
            ).fetchone()
            kept = bool(found) and found[0] == FILLED and not args.fresh
            if found and not kept:
                admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            if not kept:
                admin.execute(f'CREATE DATABASE "{name}"')
        os.environ["DATABASE_URL"] = with_path(args.database_url, name)
        return "postgresql", name, kept
    os.environ.pop("DATABASE_URL", None)
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"{name}.sqlite3"
    kept = Path(f"{path}.filled").exists() and not args.fresh
    if not kept:
        for suffix in ("", "-wal", "-shm", ".filled"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    os.environ["SYMPHONY_SQLITE_PATH"] = str(path)
    return "sqlite", str(path.relative_to(ROOT)), kept


def mark_filled(args, where: str) -> None:
    if args.database_url:
        import psycopg

        from bench.install import with_path

        with psycopg.connect(with_path(args.database_url, "postgres"), autocommit=True) as admin:
            admin.execute(f"COMMENT ON DATABASE \"{where}\" IS '{FILLED}'")
    else:
        Path(f"{ROOT / where}.filled").write_text(FILLED + "\n")


# Fill -----------------------------------------------------------------------------------


def users_and_agents() -> tuple[list[int], list[int]]:
    from django.contrib.auth.models import Group, User

    from executions.access import OPERATORS_GROUP
    from routing.models import AgentConfig

    operator = User.objects.create_user(OPERATOR, password="bench")
    operator.groups.add(Group.objects.get(name=OPERATORS_GROUP))
    users = [User.objects.create_user(f"bench-user-{n}", password="bench").pk for n in range(USERS)]
    agents = [
        AgentConfig.objects.create(
            name=name,
            role="Bench agent",
            settings={"path": "bench.noop.noop_agent"},
            capabilities=[{"name": "bench", "expertise": TAGS[n * 3 : n * 3 + 3]}],
        ).pk
        for n, name in enumerate(AGENTS)
    ]
    return users, agents


def generate(rows: int, users: list[int], agents: list[int]):
    """(task, execution) value dicts for every row, oldest first, the same on every run."""
    rng = random.Random(9)
    states, weights = list(STATES), list(STATES.values())
    agent_weights = [1 / (n + 1) for n in range(len(agents))]  # a few agents do most of the work
    tag_weights = [1 / (n + 1) ** 0.5 for n in range(len(TAGS))]
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / rows
    for n in range(1, rows + 1):
        created = start + step * n + timedelta(seconds=rng.random())
        state = rng.choices(states, weights)[0]
        agent = rng.choices(agents, agent_weights)[0]
        user = users[rng.randrange(len(users))] if rng.random() > 0.05 else None
        verb, thing = rng.choice(VERBS), rng.choice(THINGS)
        word = SEARCH_WORD if rng.random() < 0.01 else rng.choice(["weekly", "monthly", "daily", "annual"])
        tags = sorted(set(rng.choices(TAGS, tag_weights, k=rng.randint(1, 3))))
        started = created + timedelta(seconds=rng.uniform(0.01, 2)) if state not in ("QUEUED", "PENDING") else None
        finished = started + timedelta(seconds=rng.uniform(0.1, 60)) if state in FINISHED and started else None
        task = {
            "id": n,
            "name": f"{verb} {word} {thing} {n}",
            "description": f"{verb} the {thing} and report back.",
            "input_data": json.dumps({"query": f"{verb} this {thing}", "n": n}),
            "tags": json.dumps(tags),
            "agent_id": agent,
            "created_by_id": user,
            "created_at": created,
        }
        execution = {
            "id": n,
            "task_id": n,
            "agent_id": agent,
            "state": state,
            "attempt": 2 if state == "FAILED" and rng.random() < 0.3 else 1,
            "max_attempts": 3,
            "timeout_seconds": 300.0,
            "progress": 100.0 if state == "COMPLETED" else 0.0,
            "result": json.dumps({"ok": True, "words": n % 997}) if state == "COMPLETED" else None,
            "error": json.dumps({"type": "AgentError", "message": "it failed"}) if state == "FAILED" else None,
            "queued_at": created,
            "submitted_by_id": user,
            "created_at": created,
            "started_at": started,
            "finished_at": finished,
            "updated_at": finished or started or created,
        }
        yield task, execution


def row_layout(model) -> tuple[str, list[str], dict]:
    """The table, its columns in order, and each column's value when a row does not set it."""
    from django.db.models import JSONField

    fields = model._meta.local_concrete_fields
    defaults = {}
    for field in fields:
        default = field.get_default()
        defaults[field.attname] = (
            json.dumps(default) if isinstance(field, JSONField) and default is not None else default
        )
    return model._meta.db_table, [field.column for field in fields], defaults


def fill(rows: int) -> float:
    from django.db import connection, transaction

    from executions.models import Execution, Task

    started = time.perf_counter()
    with transaction.atomic():
        users, agents = users_and_agents()
    layouts = {model: row_layout(model) for model in (Task, Execution)}
    attnames = {model: [f.attname for f in model._meta.local_concrete_fields] for model in (Task, Execution)}
    writer = _SqliteWriter(layouts) if connection.vendor == "sqlite" else _PostgresWriter(layouts)
    with writer:
        batch: dict = {Task: [], Execution: []}
        for n, (task, execution) in enumerate(generate(rows, users, agents), start=1):
            for model, values in ((Task, task), (Execution, execution)):
                defaults = layouts[model][2]
                batch[model].append(tuple(values.get(name, defaults[name]) for name in attnames[model]))
            if n % BATCH == 0 or n == rows:
                writer.write(batch)
                batch = {Task: [], Execution: []}
                print(f"\r  filled {n:,} of {rows:,} ({time.perf_counter() - started:.0f} s)", end="", flush=True)
    print()
    return time.perf_counter() - started


class _SqliteWriter:
    """executemany in one transaction, without fsyncs, and the indexes built once at the end."""

    def __init__(self, layouts: dict):
        self.layouts = layouts

    def __enter__(self):
        from django.db import connection

        connection.ensure_connection()
        self.db = connection.connection
        self.db.execute("PRAGMA synchronous=OFF")
        self.indexes = []
        for table, _, _ in self.layouts.values():
            found = self.db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                [table],
            ).fetchall()
            self.indexes += found
            for name, _ in found:
                self.db.execute(f'DROP INDEX "{name}"')
        self.db.execute("BEGIN")
        return self

    def write(self, batch: dict) -> None:
        for model, rows in batch.items():
            table, columns, _ = self.layouts[model]
            marks = ", ".join("?" * len(columns))
            quoted = ", ".join(f'"{c}"' for c in columns)
            self.db.executemany(f'INSERT INTO "{table}" ({quoted}) VALUES ({marks})', [_sqlite_row(r) for r in rows])

    def __exit__(self, *exc_info):
        if exc_info[0] is not None:
            self.db.execute("ROLLBACK")
            return
        self.db.execute("COMMIT")
        print("\n  building indexes...", end="", flush=True)
        for _, sql in self.indexes:
            self.db.execute(sql)
        self.db.execute("PRAGMA synchronous=NORMAL")


def _sqlite_row(row: tuple) -> tuple:
    # Django stores an aware datetime on SQLite as naive UTC text: "2026-01-31 12:00:00.123456".
    return tuple(str(v.astimezone(UTC).replace(tzinfo=None)) if isinstance(v, datetime) else v for v in row)


class _PostgresWriter:
    """COPY, with the foreign-key triggers off for the session (the rows are consistent by construction)."""

    def __init__(self, layouts: dict):
        self.layouts = layouts

    def __enter__(self):
        from django.db import connection

        connection.ensure_connection()
        self.db = connection.connection
        self.db.autocommit = False
        self.db.execute("SET session_replication_role = replica")
        return self

    def write(self, batch: dict) -> None:
        for model, rows in batch.items():
            table, columns, _ = self.layouts[model]
            quoted = ", ".join(f'"{c}"' for c in columns)
            with self.db.cursor().copy(f'COPY "{table}" ({quoted}) FROM STDIN') as copy:
                for row in rows:
                    copy.write_row(row)

    def __exit__(self, *exc_info):
        if exc_info[0] is not None:
            self.db.rollback()
            return
        for model in self.layouts:  # the ids were given: move each sequence past them
            table = self.layouts[model][0]
            self.db.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), (SELECT max(id) FROM \"{table}\"))"
            )
        self.db.execute("SET session_replication_role = origin")
        self.db.commit()
        self.db.autocommit = True
        print("\n  analyzing...", end="", flush=True)
        for model in self.layouts:
            self.db.execute(f'ANALYZE "{self.layouts[model][0]}"')


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
    args = parse_args()
    engine, where, kept = configure(args)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)
    print(f"{engine}: {where}")
    fill_seconds = None
    if kept:
        print(f"  reusing the kept database ({args.rows:,} executions)")
    else:
        fill_seconds = fill(args.rows)
        mark_filled(args, where)
        print(f"  filled in {fill_seconds:.0f} s")
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
