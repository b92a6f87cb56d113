#!/usr/bin/env python
"""Every benchmark in one go: each bench as a subprocess, then one JSON, one Markdown table and one SVG chart.

    .venv/bin/python bench/suite.py                 # what `make bench` runs
    .venv/bin/python bench/suite.py --quick         # a smoke run of each (`make bench QUICK=1`)
    .venv/bin/python bench/suite.py --only throughput-embedded --only async-sleep

The PostgreSQL + Redis benches run when ``--database-url`` and ``--redis-url``
answer (``.ci/services_up.py``) and are reported as skipped otherwise; so is a
bench whose script is not in bench/ (the websocket fan-out is written apart).
Each bench writes its own JSON (``--output``, the contract in bench/report.py)
into the results directory; this script collects them into ``latest-all.json``
and writes ``summary.md`` and ``summary.svg`` beside them. A quick run writes
into ``results/quick/`` so it never replaces the figures of a full run.
"""

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.install import PYTHON  # noqa: E402
from bench.summary import markdown, svg  # noqa: E402

RESULTS = ROOT / "bench" / "results"


@dataclass
class Bench:
    name: str
    script: str
    what: str  # what it measures, for a row when it is skipped or fails
    services: bool = False  # needs PostgreSQL and Redis
    args: list[str] = field(default_factory=list)


BENCHES = [
    Bench("throughput-embedded", "throughput.py", "throughput and idle latency (sqlite+orm)"),
    Bench("throughput-postgres-redis", "throughput.py", "throughput and idle latency (postgresql+redis)",
          services=True),
    Bench("async-sleep", "async_sleep.py", "1,000 async sleep(1) agents (sqlite+orm)"),
    Bench("llm-streaming", "llm_streaming.py", "200 concurrent streaming llm executions (sqlite+orm)"),
    Bench("node-groups", "node_groups.py", "2 worker node groups / 1 (postgresql+redis)", services=True),
    Bench("worker-memory", "worker_memory.py", "worker RSS growth over 100,000 executions (sqlite+orm)"),
    Bench("websocket-fanout", "websocket_fanout.py", "websocket fan-out to 200 clients"),
    Bench("workflows", "workflows.py", "workflow overhead and scale (sqlite+orm)"),
    Bench("routing-accuracy", "routing_accuracy.py", "routing accuracy"),
    Bench("api-list", "api_list.py", "API lists and submits over 1,000,000 executions (sqlite)"),
    Bench("api-list-postgres", "api_list.py", "API lists and submits over 1,000,000 executions (postgresql)",
          services=True),
    Bench("dashboard-pages", "dashboard_pages.py", "overview, agents, workers, /metrics over 1,000,000 (sqlite)"),
    Bench("dashboard-pages-postgres", "dashboard_pages.py",
          "overview, agents, workers, /metrics over 1,000,000 (postgresql)", services=True),
    Bench("dashboard-all", "dashboard_all.py", "every issue 10 page, 1,000,000 + 10,000,000 events (sqlite)"),
    Bench("dashboard-all-postgres", "dashboard_all.py",
          "every issue 10 page, 1,000,000 + 10,000,000 events (postgresql)", services=True),
]  # fmt: skip


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every bench; results in results/quick/")
    parser.add_argument("--database-url", default="", help="PostgreSQL server for the scale-out benches")
    parser.add_argument("--redis-url", default="", help="Redis for the scale-out benches (a spare database)")
    parser.add_argument(
        "--only", action="append", choices=[b.name for b in BENCHES], help="run just these (repeatable)"
    )
    parser.add_argument("--results", type=Path, help="results directory (default bench/results, or its quick/)")
    parser.add_argument("--timeout", type=float, help="seconds per bench (default 900 quick, 3600 full)")
    return parser.parse_args()


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def services_reachable(database_url: str, redis_url: str) -> tuple[bool, str]:
    if not (database_url and redis_url):
        return False, "no --database-url/--redis-url given"
    probe = subprocess.run(
        [PYTHON, str(ROOT / ".ci" / "services_up.py"), database_url, redis_url],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return probe.returncode == 0, probe.stderr.strip() or "not reachable"


def run(bench: Bench, args, results_dir: Path, services: tuple[bool, str]) -> dict:
    output = results_dir / f"{bench.name}.json"
    entry = {"name": bench.name, "script": f"bench/{bench.script}", "output": shown(output)}
    script = ROOT / "bench" / bench.script
    if not script.exists():
        return {**entry, "status": "skipped", "rows": [report.skipped(bench.what, f"bench/{bench.script} not present")]}
    if bench.services and not services[0]:
        reason = f"PostgreSQL/Redis not reachable ({services[1]})"
        return {**entry, "status": "skipped", "rows": [report.skipped(bench.what, reason)]}
    command = [PYTHON, str(script), "--output", str(output), *bench.args]
    if args.quick:
        command.append("--quick")
    if bench.services:
        command += ["--database-url", args.database_url, "--redis-url", args.redis_url]
    print(f"\n== {bench.name}: {' '.join(command[1:])}", flush=True)
    output.unlink(missing_ok=True)
    started = time.monotonic()
    timeout = args.timeout or (900 if args.quick else 3600)
    try:
        code = subprocess.run(command, cwd=ROOT, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        code = f"timed out after {timeout:g} s"
    entry["seconds"] = round(time.monotonic() - started, 1)
    if code != 0 or not output.exists():
        why = f"failed: exit {code}" if code != 0 else "wrote no results"
        return {**entry, "status": "failed", "rows": [{**report.skipped(bench.what, why), "note": why}]}
    try:
        result = json.loads(output.read_text())
        rows = [
            {"unit": "", "target": None, **row, "met": row.get("met", report.meets(row["value"], row.get("target")))}
            for row in result["rows"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        why = f"its JSON does not follow the contract in bench/report.py ({type(exc).__name__}: {exc})"
        return {**entry, "status": "failed", "rows": [report.skipped(bench.what, why)]}
    return {**entry, "status": "ran", "config": result.get("config", {}), "rows": rows}


def merged(previous: Path, ran: list[dict]) -> list[dict]:
    """The previous run's entries in suite order, each replaced by this run's where there is one."""
    entries = (
        {entry["name"]: entry for entry in json.loads(previous.read_text())["benches"]} if previous.exists() else {}
    )
    entries.update({entry["name"]: entry for entry in ran})
    return [entries[bench.name] for bench in BENCHES if bench.name in entries]


def main() -> int:
    args = parse_args()
    results_dir = args.results or (RESULTS / "quick" if args.quick else RESULTS)
    results_dir.mkdir(parents=True, exist_ok=True)
    services = services_reachable(args.database_url, args.redis_url)
    print(f"PostgreSQL + Redis: {'reachable' if services[0] else 'skipped, ' + services[1]}")
    started = time.time()
    benches = [b for b in BENCHES if not args.only or b.name in args.only]
    ran = [run(bench, args, results_dir, services) for bench in benches]
    if args.only:  # the benches not run now keep their entries from the last run
        ran = merged(results_dir / "latest-all.json", ran)
    collected = {
        "quick": args.quick,
        "machine": report.machine(args.database_url if services[0] else ""),
        "seconds": round(time.time() - started, 1),
        "benches": ran,
    }
    (results_dir / "latest-all.json").write_text(json.dumps(collected, indent=2) + "\n")
    (results_dir / "summary.md").write_text(markdown(collected))
    (results_dir / "summary.svg").write_text(svg(collected))
    print(f"\n{markdown(collected)}")
    print(f"wrote {shown(results_dir)}/latest-all.json, summary.md and summary.svg")
    return 1 if any(entry["status"] == "failed" for entry in ran) else 0


if __name__ == "__main__":
    sys.exit(main())
