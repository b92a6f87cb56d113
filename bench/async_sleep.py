#!/usr/bin/env python
"""1,000 async agents that each ``await asyncio.sleep(1)``: wall time from release to all COMPLETED.

    .venv/bin/python bench/async_sleep.py             # N=1,000, embedded (SQLite + ORM broker), default settings
    .venv/bin/python bench/async_sleep.py --quick     # N=200

Default settings: ``SYMPHONY_WORKERS`` and ``SYMPHONY_SLOTS`` are left unset. The
executions are submitted where the cluster cannot see them, then released in
one step (bench/install.py ``Staging``); the clock runs from the release to the
last ``COMPLETED`` event. Issue 8's target: 1,000 in <= 5 s. Also reported: the
most executions RUNNING at once (from the event rows), which is what slots change.
"""

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.install import Install, Staging, wait_completed, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "async_sleep.json"
TARGET_SECONDS = 5.0  # for N = 1,000
FULL_N = 1_000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=FULL_N, help="executions (default 1,000)")
    parser.add_argument("--seconds", type=float, default=1.0, help="each agent's sleep (default 1)")
    parser.add_argument("--quick", action="store_true", help="--n 200")
    parser.add_argument("--database-url", default="", help="PostgreSQL server: a fresh database is created on it")
    parser.add_argument("--redis-url", default="", help="Redis for the broker and channel layer (use a spare db)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra environment")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite file)")
    args = parser.parse_args()
    if args.quick:
        args.n = 200
    return args


def sleep_agent(name: str = "bench-sleep"):
    from routing.models import AgentConfig

    agent, _ = AgentConfig.objects.update_or_create(
        name=name, defaults={"settings": {"path": "bench.sleep.sleep_agent"}}
    )
    return agent


def peak_running(ids: list[int]) -> int:
    """The most executions RUNNING at the same time, from their RUNNING and end event rows."""
    from executions.models import ExecutionEvent

    edges = []
    rows = ExecutionEvent.objects.filter(execution_id__gte=min(ids), execution_id__lte=max(ids), kind="state")
    for to_state, from_state, at in rows.values_list("to_state", "from_state", "created_at"):
        if to_state == "RUNNING":
            edges.append((at, 1))
        elif from_state == "RUNNING":
            edges.append((at, -1))
    running = peak = 0
    for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):  # an end before a start at the same instant
        running += step
        peak = max(peak, running)
    return peak


def capacity() -> tuple[int, int | None]:
    """(worker processes, slots per process or None before slots existed), as the cluster reads its settings."""
    from django.conf import settings

    return settings.Q_CLUSTER["workers"], getattr(settings, "SYMPHONY_SLOTS", None)


def warm_up(agent, procs) -> None:
    from executions.services import execution_submit

    ids = [execution_submit(agent=agent, input_data={"seconds": 0}, max_attempts=1).pk for _ in range(4)]
    wait_completed(ids, procs=procs, timeout=60)


def main() -> int:
    args = parse_args()
    with Install(database_url=args.database_url, redis_url=args.redis_url, workers=None, sets=args.set,
                 keep=args.keep) as install:  # fmt: skip
        from django.db import connection

        procs = [install.start_worker(), install.start_dispatcher()]
        agent = sleep_agent()
        warm_up(agent, procs)
        bursts = Staging()
        wait_for(lambda: bursts.queued() == 0, timeout=60, what="an idle broker queue", procs=procs)
        workers, slots = capacity()
        print(f"{args.n} x sleep({args.seconds:g}), {workers} workers, slots {slots}...", file=sys.stderr)
        ids, submit_s, t0 = bursts.executions(
            agent=agent, n=args.n, dispatcher=procs[1], input_data={"seconds": args.seconds}
        )
        last = wait_completed(ids, procs=procs, timeout=60 + args.n * args.seconds)
        seconds = last - t0
        peak = peak_running(ids)
        per_wave = workers * (slots or 1)
        floor = math.ceil(args.n / per_wave) * args.seconds
        shape = f"{connection.vendor}+{'redis' if bursts.redis else 'orm'}"
        full = args.n == FULL_N and args.seconds == 1.0
        note = (
            f"{workers} workers x {slots or 1} slot(s): at best {floor:g} s if slots are per process; "
            f"peak {peak} RUNNING at once; submit {submit_s:.1f} s (not timed)"
        )
        if not full:
            note = f"quick/custom run, N={args.n}, the target is for 1,000 x 1 s; " + note
        rows = [
            report.row(f"{args.n:,} async sleep({args.seconds:g}) agents, release -> all COMPLETED ({shape})",
                       seconds, "s", f"<= {TARGET_SECONDS:g}" if full else None, note),
            report.row(f"peak executions RUNNING at once ({shape})", peak, "executions", None,
                       f"{args.n / seconds:.0f} exec/s"),
        ]  # fmt: skip
        config = {"n": args.n, "seconds": args.seconds, "workers": workers, "slots": slots, "shape": shape,
                  "environment": args.set}  # fmt: skip
        output = report.write(args.output, name="async agents", config=config, rows=rows, machine=report.machine())
        report.print_rows(rows)
        print(f"results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
