#!/usr/bin/env python
"""Two worker node groups against one: throughput of I/O-bound agents on PostgreSQL + Redis.

    .venv/bin/python bench/node_groups.py --database-url postgres://postgres@127.0.0.1:5432/symphony \\
        --redis-url redis://127.0.0.1:6379/15                 # N=1,000, 2 rounds
    .venv/bin/python bench/node_groups.py ... --quick         # N=200, 1 round

A node group is one ``manage.py symphony worker`` cluster; two groups are two
clusters against the same database and Redis, as two machines would run them.
Each group gets ``SYMPHONY_WORKERS=2`` and ``SYMPHONY_SLOTS=5`` (``--workers``,
``--slots``): small on purpose, so one group is bound by its slots, not by the
CPUs, and a second group has capacity to add. The agent awaits
``asyncio.sleep(0.2)``. Each round runs a burst with one group, starts the
second, runs the same burst with both, and stops the second again; the clock
runs from the release (bench/install.py ``Staging``) to the last ``COMPLETED``.
Issue 8's target: the two-group rate >= 1.8x the one-group rate.
"""

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.async_sleep import capacity, peak_running, sleep_agent, warm_up  # noqa: E402
from bench.install import Install, Staging, wait_completed, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "node_groups.json"
TARGET_RATIO = 1.8


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000, help="executions per burst (default 1,000)")
    parser.add_argument("--seconds", type=float, default=0.2, help="each agent's sleep (default 0.2)")
    parser.add_argument("--workers", type=int, default=2, help="SYMPHONY_WORKERS of each group (default 2)")
    parser.add_argument("--slots", type=int, default=5, help="SYMPHONY_SLOTS of each group (default 5)")
    parser.add_argument("--rounds", type=int, default=2, help="one-group/two-group pairs (default 2)")
    parser.add_argument("--quick", action="store_true", help="--n 200 --rounds 1")
    parser.add_argument("--database-url", required=True, help="PostgreSQL server: a fresh database is created on it")
    parser.add_argument("--redis-url", required=True, help="Redis for the broker and channel layer (use a spare db)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra environment")
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs)")
    args = parser.parse_args()
    if args.quick:
        args.n, args.rounds = 200, 1
    return args


def burst(bursts: Staging, agent, args, procs) -> dict:
    wait_for(lambda: bursts.queued() == 0, timeout=60, what="an idle broker queue", procs=procs)
    ids, _, t0 = bursts.executions(agent=agent, n=args.n, dispatcher=procs[1], input_data={"seconds": args.seconds})
    last = wait_completed(ids, procs=procs, timeout=60 + args.n * args.seconds)
    return {"seconds": round(last - t0, 3), "per_second": round(args.n / (last - t0), 1), "peak": peak_running(ids)}


def main() -> int:
    args = parse_args()
    sets = [f"SYMPHONY_SLOTS={args.slots}", *args.set]
    with Install(database_url=args.database_url, redis_url=args.redis_url, workers=args.workers, sets=sets,
                 keep=args.keep) as install:  # fmt: skip
        first = install.start_worker("group-1")
        dispatcher = install.start_dispatcher()
        agent = sleep_agent()
        warm_up(agent, [first, dispatcher])
        bursts = Staging()
        workers, slots = capacity()
        per_group = workers * (slots or 1)
        bound = per_group / args.seconds
        runs = {"one": [], "two": []}
        for round_number in range(1, args.rounds + 1):
            runs["one"].append(burst(bursts, agent, args, [first, dispatcher]))
            print(f"round {round_number}: one group  {runs['one'][-1]['per_second']:>7.1f}/s", file=sys.stderr)
            second = install.start_worker(f"group-2-{round_number}")
            procs = [first, dispatcher, second]
            # Its processes up (leader, sentinel, pusher, monitor, workers), then work that may reach them.
            wait_for(lambda g=second: len(g.pids()) >= workers + 4, timeout=60, what="the second group", procs=procs)
            warm_up(agent, procs)
            runs["two"].append(burst(bursts, agent, args, procs))
            print(f"round {round_number}: two groups {runs['two'][-1]['per_second']:>7.1f}/s", file=sys.stderr)
            second.stop()
        one = statistics.median(run["per_second"] for run in runs["one"])
        two = statistics.median(run["per_second"] for run in runs["two"])
        ratio = two / one
        slot_note = f"{slots} slots" if slots else "no SYMPHONY_SLOTS in this build: 1 execution per process"
        rows = [
            report.row("2 worker node groups / 1, async sleep(0.2) agents (postgresql+redis)", ratio, "x",
                       f">= {TARGET_RATIO:g}",
                       f"{two:.0f} vs {one:.0f} exec/s, N={args.n}, median of {args.rounds}; each group "
                       f"{workers} workers x {slot_note} = {per_group} at once, slot-bound at {bound:.0f} exec/s"),
            report.row("one node group against its slot bound (postgresql+redis)", 100 * one / bound, "%", None,
                       f"peak {max(run['peak'] for run in runs['one'])} RUNNING at once with one group, "
                       f"{max(run['peak'] for run in runs['two'])} with two"),
        ]  # fmt: skip
        config = {"n": args.n, "seconds": args.seconds, "workers": workers, "slots": slots, "rounds": args.rounds,
                  "environment": sets}  # fmt: skip
        output = report.write(args.output, name="node groups", config=config, rows=rows, runs=runs,
                              machine=report.machine(args.database_url))  # fmt: skip
        report.print_rows(rows)
        print(f"results: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
