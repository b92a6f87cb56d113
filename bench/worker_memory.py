#!/usr/bin/env python
"""Worker memory after many executions: summed RSS of the worker cluster after 100,000 no-ops vs after 1,000.

    .venv/bin/python bench/worker_memory.py            # 100,000 executions, embedded (SQLite + ORM broker)
    .venv/bin/python bench/worker_memory.py --quick    # 10,000

Default settings (``SYMPHONY_WORKERS`` unset). The bench process submits the
``bench-noop`` agent in batches of ``--batch`` (one transaction each, as a fan-out
submits) and waits for each batch to complete before the next, so the cluster
is idle whenever memory is read. At each checkpoint (1,000 first, then every
tenth of the run) it reads the resident set (RSS) of every process of the
worker cluster with psutil and sums them. Issue 8's target: the sum after all
executions at most 10% above the sum after 1,000. The processes' ids are kept
too: django-q2 replacing a worker (``recycle``) would reset its memory and hide
growth, so the number of replaced processes is reported beside the figure.
"""

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.install import Install, Staging, wait_completed, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "worker_memory.json"
TARGET_GROWTH = 10.0  # percent
BASELINE = 1_000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="executions in all (default 100,000)")
    parser.add_argument("--batch", type=int, default=1_000, help="executions per submitted batch (default 1,000)")
    parser.add_argument("--quick", action="store_true", help="--n 10000")
    parser.add_argument("--database-url", default="", help="PostgreSQL server: a fresh database is created on it")
    parser.add_argument("--redis-url", default="", help="Redis for the broker and channel layer (use a spare db)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra environment")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite file)")
    args = parser.parse_args()
    if args.quick:
        args.n = 10_000
    return args


def main() -> int:
    args = parse_args()
    with Install(database_url=args.database_url, redis_url=args.redis_url, workers=None, sets=args.set,
                 keep=args.keep) as install:  # fmt: skip
        from django.db import connection, transaction

        from executions.services import execution_submit
        from routing.models import AgentConfig

        worker = install.start_worker()
        procs = [worker, install.start_dispatcher()]
        agent, _ = AgentConfig.objects.update_or_create(
            name="bench-noop", defaults={"settings": {"path": "bench.noop.noop_agent"}}
        )
        bursts = Staging()
        step = max(BASELINE, args.n // 10)
        checkpoints = sorted({BASELINE, *range(step, args.n + 1, step), args.n})
        samples, done, started = [], 0, time.time()
        while done < args.n:
            size = min(args.batch, args.n - done, checkpoints[0] - done if checkpoints else args.n)
            with transaction.atomic():
                ids = [execution_submit(agent=agent, input_data={}, max_attempts=1).pk for _ in range(size)]
            wait_completed(ids, procs=procs, timeout=120 + size, interval=0.2)
            done += size
            if checkpoints and done == checkpoints[0]:
                checkpoints.pop(0)
                wait_for(lambda: bursts.queued() == 0, timeout=60, what="an idle broker queue", procs=procs)
                samples.append({"executions": done, "rss_mb": round(worker.rss_bytes() / 2**20, 1),
                                "pids": sorted(worker.pids())})  # fmt: skip
                rate = done / (time.time() - started)
                print(f"  {done:>7,} executions: {samples[-1]['rss_mb']:>7.1f} MB ({rate:.0f}/s)", file=sys.stderr)
        base, last = samples[0], samples[-1]
        growth = 100 * (last["rss_mb"] / base["rss_mb"] - 1)
        replaced = len(set(base["pids"]) - set(last["pids"]))
        shape = f"{connection.vendor}+{'redis' if bursts.redis else 'orm'}"
        target = f"<= {TARGET_GROWTH:g}" if args.n >= 10 * BASELINE else None
        rows = [
            report.row(f"worker cluster RSS growth, {args.n:,} vs {BASELINE:,} no-op executions ({shape})", growth,
                       "%", target,
                       f"{base['rss_mb']:.0f} MB -> {last['rss_mb']:.0f} MB summed over {len(last['pids'])} "
                       f"processes; {replaced} process(es) replaced meanwhile"),
        ]  # fmt: skip
        config = {"n": args.n, "batch": args.batch, "shape": shape, "environment": args.set}
        output = report.write(args.output, name="worker memory", config=config, rows=rows, samples=samples,
                              machine=report.machine())  # fmt: skip
        report.print_rows(rows)
        print(f"results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
