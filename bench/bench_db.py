"""The kept database of bench/api_list.py: a million executions, filled once, reused while the schema matches.

The database is named after the row count and a hash of every migration (and of
this fill's version), so a rerun reuses it and a schema change fills a new one.
SQLite: a file in bench/.data/ (git-ignored), kept once a ``.filled`` file stands
beside it. PostgreSQL: a database ``symphony_bench_api_<rows>_<key>`` left on the
server, kept once its comment says it was filled. The fill writes raw rows
(SQLite: ``executemany`` with ``synchronous=OFF`` and the indexes built after;
PostgreSQL: ``COPY`` with the foreign-key triggers off): users, agents, a task
per execution with tags and a name, executions in a realistic mix of states
spread over a year, and their events: about ten per execution (the submit, the
state changes with their from/to states, progress, log and output rows with small
JSON data, at times consistent with the execution's), one execution near the end
given ``HEAVY_LOG_EVENTS`` log events. An execution's events have consecutive ids
(a real store interleaves executions; nothing read here depends on it).

SQLite's text search (migration 0008's FTS5 table) is kept by triggers; the fill
drops them, inserts, puts them back and fills the table once with the
migration's own ``INSERT .. SELECT``: the rows the triggers would have written.
PostgreSQL: the indexes that back no constraint are dropped before the ``COPY``
and built after it.
"""

import hashlib
import json
import os
import random
import time
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / ".data"
FILL_VERSION = 2  # bump when the fill below changes what it writes
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
BATCH = 20_000  # executions per write: about 200,000 event rows in memory at once
HEAVY_LOG_EVENTS = 5_000  # log events of one recent COMPLETED execution (the execution page's worst case)
FILLED = "filled by bench/api_list.py"


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


EVENT_COLUMNS = ["id", "execution_id", "kind", "from_state", "to_state", "data", "actor_id", "created_at"]
END_DATA = {
    "COMPLETED": "{}",
    "FAILED": '{"error": {"type": "AgentError", "message": "it failed"}}',
    "CANCELLED": '{"reason": "cancelled"}',
    "TIMED_OUT": '{"reason": "timed out", "timeout_seconds": 300.0}',
    "PAUSED": '{"reason": "paused"}',
}


def events(execution: dict, by: str | None, rng: random.Random, log_events: int | None = None) -> list[tuple]:
    """An execution's event rows (without id) as its run would have written them: about ten.

    The submit; QUEUED → PREPARING → RUNNING; log and progress rows spread over the
    run; the output of a COMPLETED one; the end (or the pause). A FAILED second
    attempt has its retry (RUNNING → QUEUED) and second start half-way. ``actor`` is null.
    """
    pk, state, created = execution["id"], execution["state"], execution["created_at"]
    submit = f'{{"reason": "submitted", "by": "{by}"}}' if by else '{"reason": "submitted"}'
    rows = [(pk, "state", "", "PENDING" if state == "PENDING" else "QUEUED", submit, None, created)]
    started = execution["started_at"]
    if started is None:
        return rows
    rows.append((pk, "state", "QUEUED", "PREPARING", "{}", None, created + (started - created) / 2))
    if state == "PREPARING":
        return rows
    rows.append((pk, "state", "PREPARING", "RUNNING", "{}", None, started))
    finished = execution["finished_at"]
    span = (finished or started + timedelta(seconds=1)) - started
    logs = rng.randint(1, 7) if log_events is None else log_events
    moves = rng.randint(1, 3)
    run = []
    for i in range(max(logs, moves)):
        if i < logs:
            run.append(("log", f'{{"lines": ["step {i}: read {(pk * 7 + i) % 500} rows"]}}'))
        if i < moves:
            done = 100 * (i + 1) / (moves if state == "COMPLETED" else moves + 1)
            run.append(("progress", f'{{"percent": {done:.1f}, "step": "step {i}", "new_steps": null}}'))
    retry_at = len(run) // 2 if execution["attempt"] > 1 else -1
    for n, (kind, data) in enumerate(run):
        at = started + span * ((n + 1) / (len(run) + 2))
        if n == retry_at:
            rows.append((pk, "state", "RUNNING", "QUEUED", '{"reason": "retry", "attempt": 2}', None, at))
            rows.append((pk, "state", "QUEUED", "PREPARING", "{}", None, at))
            rows.append((pk, "state", "PREPARING", "RUNNING", "{}", None, at))
        rows.append((pk, kind, "", "", data, None, at))
    if state == "COMPLETED":
        text = f'{{"text": "The {pk % 97} findings, in short."}}'
        rows.append((pk, "output", "", "", text, None, started + span * ((len(run) + 1) / (len(run) + 2))))
    if state in END_DATA:
        rows.append((pk, "state", "RUNNING", state, END_DATA[state], None, finished or started + span))
    return rows


def fill(rows: int) -> float:
    from django.contrib.auth.models import User
    from django.db import connection, transaction

    from executions.models import Execution, ExecutionEvent, Task

    started = time.perf_counter()
    with transaction.atomic():
        users, agents = users_and_agents()
    names = dict(User.objects.filter(pk__in=users).values_list("pk", "username"))
    models = (Task, Execution, ExecutionEvent)
    layouts = {model: row_layout(model) for model in models}
    assert layouts[ExecutionEvent][1] == EVENT_COLUMNS, layouts[ExecutionEvent][1]
    attnames = {model: [f.attname for f in model._meta.local_concrete_fields] for model in (Task, Execution)}
    writer = _SqliteWriter(layouts) if connection.vendor == "sqlite" else _PostgresWriter(layouts)
    rng = random.Random(10)
    event_id, heavy = 0, None
    with writer:
        batch: dict = {model: [] for model in models}
        for n, (task, execution) in enumerate(generate(rows, users, agents), start=1):
            for model, values in ((Task, task), (Execution, execution)):
                defaults = layouts[model][2]
                batch[model].append(tuple(values.get(name, defaults[name]) for name in attnames[model]))
            many = (
                heavy is None and n > rows - 100 and execution["state"] == "COMPLETED" and execution["submitted_by_id"]
            )
            heavy = n if many else heavy
            for event in events(
                execution, names.get(execution["submitted_by_id"]), rng, HEAVY_LOG_EVENTS if many else None
            ):
                event_id += 1
                batch[ExecutionEvent].append((event_id, *event))
            if n % BATCH == 0 or n == rows:
                writer.write(batch)
                batch = {model: [] for model in models}
                print(
                    f"\r  filled {n:,} of {rows:,} executions, {event_id:,} events"
                    f" ({time.perf_counter() - started:.0f} s)",
                    end="",
                    flush=True,
                )
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
        self.indexes, self.triggers = [], []
        for table, _, _ in self.layouts.values():
            found = self.db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND sql IS NOT NULL",
                [table],
            ).fetchall()
            self.indexes += found
            for name, _ in found:
                self.db.execute(f'DROP INDEX "{name}"')
            # The text search's triggers (migration 0008) would index each row as it comes: put back after.
            found = self.db.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", [table]
            ).fetchall()
            self.triggers += found
            for name, _ in found:
                self.db.execute(f'DROP TRIGGER "{name}"')
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
        for _, sql in self.triggers:
            self.db.execute(sql)
        if self.triggers:
            print(" filling the text search...", end="", flush=True)
            self.db.execute("BEGIN")
            # Migration 0008's own statement filling the search from stored rows: the insert trigger's body.
            self.db.execute(import_module("executions.migrations.0008_list_search").SQLITE_CREATE[-1])
            self.db.execute("COMMIT")
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
        self.db.execute("SET maintenance_work_mem = '256MB'")
        self.indexes = []
        for table, _, _ in self.layouts.values():
            found = self.db.execute(
                "SELECT indexname, indexdef FROM pg_indexes i WHERE tablename = %s"
                " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
                [table],
            ).fetchall()
            self.indexes += found
            for name, _ in found:
                self.db.execute(f'DROP INDEX "{name}"')
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
        print("\n  building indexes...", end="", flush=True)
        for _, sql in self.indexes:
            self.db.execute(sql)
        self.db.commit()
        self.db.autocommit = True
        # VACUUM too: as autovacuum would soon after a bulk load, it sets the visibility map that
        # index-only scans (the system pages' live counts) rely on.
        print("\n  vacuuming and analyzing...", end="", flush=True)
        for model in self.layouts:
            self.db.execute(f'VACUUM (ANALYZE) "{self.layouts[model][0]}"')
