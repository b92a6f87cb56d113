"""The result file every bench writes with ``--output``, and the machine it ran on.

    {"name": str, "config": {...}, "rows": [{"what", "value", "unit", "target", "met", "note"?}]}

A target is written as ``"<= 5"`` or ``">= 1.8"`` in the row's unit, so the
summary can tell how far a value is from it without knowing the bench.
"""

import json
import os
import platform
import re
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

TARGET = re.compile(r"^\s*(<=|>=)\s*([0-9.]+)")


def parse_target(target: str | None) -> tuple[str, float] | None:
    match = TARGET.match(target or "")
    return (match.group(1), float(match.group(2))) if match else None


def meets(value: float | None, target: str | None) -> bool | None:
    parsed = parse_target(target)
    if parsed is None or value is None:
        return None
    op, bound = parsed
    return value <= bound if op == "<=" else value >= bound


def row(what: str, value: float, unit: str, target: str | None = None, note: str | None = None) -> dict:
    """One measured figure; ``met`` follows from the target."""
    entry = {"what": what, "value": round(value, 4), "unit": unit, "target": target, "met": meets(value, target)}
    if note:
        entry["note"] = note
    return entry


def skipped(what: str, why: str, target: str | None = None) -> dict:
    """A figure that was not measured in this run (a service not reachable, a bench not present)."""
    return {"what": what, "value": None, "unit": "", "target": target, "met": None, "note": f"skipped: {why}"}


def write(path: str | Path, *, name: str, config: dict, rows: list[dict], **details) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "name": name,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": config,
        "rows": rows,
        **details,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def print_rows(rows: list[dict]) -> None:
    for entry in rows:
        value = "-" if entry["value"] is None else f"{entry['value']:g} {entry['unit']}"
        verdict = {True: "met", False: "MISSED", None: ""}[entry["met"]]
        target = entry["target"] or ""
        note = f"  ({entry['note']})" if entry.get("note") else ""
        print(f"  {entry['what']:<58} {value:>16}  {target:<10} {verdict}{note}")


def machine(database_url: str = "") -> dict:
    """CPU model, cores, RAM, Python, SQLite and (if reachable) PostgreSQL versions, and the date."""
    import psutil

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    postgres = None
    if database_url:
        try:
            import psycopg

            from bench.install import with_path

            with psycopg.connect(with_path(database_url, "postgres"), connect_timeout=3) as conn:
                postgres = conn.execute("SHOW server_version").fetchone()[0]
        except Exception as exc:  # reported, not fatal: the summary says the services were not reachable
            postgres = f"not reachable ({type(exc).__name__})"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": postgres,
        "platform": platform.platform(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
