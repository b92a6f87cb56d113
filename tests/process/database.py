"""The process tests' view of the truth: the test's database read straight from the test process,
and a throwaway PostgreSQL database per test."""

import contextlib
import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class Database:
    """Read the test's database straight from the test process: sqlite3 or psycopg."""

    def __init__(self, *, sqlite_path: Path | None = None, url: str | None = None):
        self.sqlite_path, self.url = sqlite_path, url
        self._conn = None

    @property
    def vendor(self) -> str:
        return "postgresql" if self.url else "sqlite"

    def _connection(self):
        if self._conn is None:
            if self.url:
                import psycopg
                from psycopg.rows import dict_row

                self._conn = psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=10)
            else:
                self._conn = sqlite3.connect(self.sqlite_path, timeout=30, isolation_level=None)
                self._conn.row_factory = sqlite3.Row
        return self._conn

    def rows(self, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
        """Run a query written with ``%s`` placeholders; JSON columns come back decoded."""
        if not self.url:
            sql = sql.replace("%s", "?")
        cursor = self._connection().execute(sql, params)
        return [{key: _decode(key, row[key]) for key in row.keys()} for row in cursor.fetchall()]

    def value(self, sql: str, params: tuple = ()) -> Any:
        rows = self.rows(sql, params)
        return next(iter(rows[0].values())) if rows else None

    def executions(self) -> dict[int, dict]:
        return {row["id"]: row for row in self.rows("SELECT * FROM executions_execution ORDER BY id")}

    def events(self, execution_id: int | None = None) -> list[dict]:
        if execution_id is None:
            return self.rows("SELECT * FROM executions_executionevent ORDER BY id")
        return self.rows("SELECT * FROM executions_executionevent WHERE execution_id = %s ORDER BY id", (execution_id,))

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


JSON_COLUMNS = {"data", "result", "error", "metadata", "steps", "input_data", "settings"}


def _decode(key: str, value: Any) -> Any:
    if key in JSON_COLUMNS and isinstance(value, str):
        return json.loads(value)
    return value


def _with_path(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@contextlib.contextmanager
def postgres_database(base_url: str):
    """A uniquely named, empty PostgreSQL database on the server of ``base_url``; dropped after."""
    import psycopg

    name = f"symphony_proc_{uuid.uuid4().hex[:12]}"
    admin_url = _with_path(base_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_path(base_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            )
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
