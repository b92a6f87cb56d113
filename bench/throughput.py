#!/usr/bin/env python
"""Symphony vs raw django-q2: burst throughput and idle submit-to-RUNNING latency.

    .venv/bin/python bench/throughput.py [--n 500] [--workers 2] [--rounds 2] [--samples 200]
    .venv/bin/python bench/throughput.py --database-url postgres://postgres@127.0.0.1:5432/symphony \\
        --redis-url redis://127.0.0.1:6379/15

One run, one fresh database (a SQLite file in a temp dir, or a new PostgreSQL
database that is dropped afterwards), one ``manage.py symphony worker`` and one
dispatcher started with Symphony's own settings. See bench/README.md for what
is measured and how to read it.
"""

import argparse
import contextlib
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.install import PYTHON, Install, Process, Staging, forget_cluster, fresh_postgres, wait_for  # noqa: E402

# Other benches (websocket_fanout.py) import the set-up from here, where it used to live.
__all__ = ["PYTHON", "Process", "forget_cluster", "fresh_postgres", "wait_for", "main"]

RESULTS = ROOT / "bench" / "results" / "latest.json"
# Issue 8: Symphony against raw django-q2 that stores its results (both keep a record), and against
# bare django-q2 (stores nothing); idle submit -> RUNNING p50. Embedded (SQLite + ORM broker) / Redis broker.
TARGETS = {
    "orm": {"vs_stored": 1.0, "vs_bare": 0.6, "p50_ms": 10.0},
    "redis": {"vs_stored": 1.0, "vs_bare": 0.3, "p50_ms": 5.0},
}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="tasks/executions per burst (default 500)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (SYMPHONY_WORKERS, default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="bare/stored/Symphony burst trios, rotated (default 2)")
    parser.add_argument("--samples", type=int, default=200, help="idle latency samples (default 200)")
    parser.add_argument("--quick", action="store_true", help="--n 200 --rounds 1 --samples 60")
    parser.add_argument("--database-url", default="", help="PostgreSQL server: a fresh database is created on it")
    parser.add_argument("--redis-url", default="", help="Redis for the broker and channel layer (use a spare db)")
    parser.add_argument("--log-level", default="WARNING", help="SYMPHONY_LOG_LEVEL for all processes (WARNING)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every process, e.g. --set SYMPHONY_BROKER_POLL=0.005 (repeatable)",
    )
    parser.add_argument("--output", default=str(RESULTS), help=f"JSON results (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite file)")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        help="record each burst with py-spy (every worker process) into DIR/<phase>-<round>.txt (collapsed stacks)",
    )
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="py-spy executable")
    args = parser.parse_args()
    if args.quick:
        args.n, args.rounds, args.samples = 200, 1, 60
    return args


# Measurements -------------------------------------------------------------------------


class Bench:
    def __init__(self, args, workdir: Path, procs: list[Process]):
        from routing.models import AgentConfig

        self.args, self.workdir, self.procs = args, workdir, procs
        self.bursts = Staging()
        self.redis, self.broker, self.staging = self.bursts.redis, self.bursts.broker, self.bursts.staging
        self.agent, _ = AgentConfig.objects.update_or_create(
            name="bench-noop", defaults={"settings": {"path": "bench.noop.noop_agent"}}
        )
        self.marks = 0

    def queued(self, key: str | None = None) -> int:
        return self.bursts.queued(key)

    def release(self) -> float:
        return self.bursts.release()

    @contextlib.contextmanager
    def profiled(self, name: str):
        """With --profile, sample every process of the cluster with py-spy while the block runs."""
        if not self.args.profile:
            yield
            return
        out = Path(self.args.profile) / f"{name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        spy = subprocess.Popen(
            [self.args.py_spy, "record", "--subprocesses", "--format", "raw", "--rate", "200",
             "--pid", str(self.procs[0].popen.pid), "--output", str(out)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        time.sleep(1.0)  # py-spy attaches to each process
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            try:
                spy.wait(30)
            except subprocess.TimeoutExpired:
                spy.kill()

    def idle(self) -> None:
        wait_for(lambda: self.queued() == 0, timeout=120, what="the broker queue to drain", procs=self.procs)

    # raw django-q2

    def new_marker(self) -> Path:
        self.marks += 1
        path = self.workdir / f"marks-{self.marks}.txt"
        path.touch()
        return path

    @staticmethod
    def read_marks(path: Path) -> list[float]:
        return [float(line) for line in path.read_text().split()]

    def raw_burst(self) -> dict:
        from django_q.tasks import async_task

        n, marker = self.args.n, self.new_marker()
        started = time.perf_counter()
        for _ in range(n):
            async_task("bench.noop.noop", str(marker), broker=self.staging)
        enqueue_s = time.perf_counter() - started
        t0 = self.release()
        wait_for(
            lambda: marker.stat().st_size and len(self.read_marks(marker)) >= n and self.queued() == 0,
            timeout=max(120, n / 5), what=f"{n} raw tasks", procs=self.procs,
        )  # fmt: skip
        done = time.time()
        last = max(self.read_marks(marker))
        return self._figures(n, t0, done, last, enqueue_s)

    def raw_stored_burst(self) -> dict:
        """Raw django-q2 that keeps a record of every task, as Symphony does: ``save=True`` per task.

        Done means N ``Success`` rows of this burst's group, written by the cluster's monitor,
        and (ORM broker) every message acked. Per task this is what ``save_limit=0`` does, and
        what the default ``save_limit=250`` does until it starts pruning, which costs more.
        """
        from django.db.models import Max
        from django_q.models import Success
        from django_q.tasks import async_task

        n, group = self.args.n, f"bench-stored-{uuid.uuid4().hex[:8]}"
        started = time.perf_counter()
        for _ in range(n):
            async_task("bench.noop.noop", group=group, save=True, broker=self.staging)
        enqueue_s = time.perf_counter() - started
        saved = Success.objects.filter(group=group)
        t0 = self.release()
        wait_for(
            lambda: saved.count() >= n and self.queued() == 0,
            timeout=max(120, n / 5), what=f"{n} stored raw tasks", procs=self.procs,
        )  # fmt: skip
        done = time.time()
        last = saved.aggregate(last=Max("stopped"))["last"].timestamp()
        return self._figures(n, t0, done, last, enqueue_s)

    # Symphony

    def symphony_burst(self) -> dict:
        from executions.models import Execution, ExecutionEvent

        n = self.args.n
        ids, submit_s, t0 = self.bursts.executions(agent=self.agent, n=n, dispatcher=self.procs[1])
        low, high = min(ids), max(ids)
        batch = Execution.objects.filter(pk__gte=low, pk__lte=high)

        def finished():
            if batch.exclude(state__in=["QUEUED", "PREPARING", "RUNNING", "COMPLETED"]).exists():
                raise SystemExit(f"executions failed: {list(batch.exclude(state='COMPLETED').values('pk', 'error'))}")
            return batch.filter(state="COMPLETED").count() == n and self.queued() == 0

        wait_for(finished, timeout=max(120, n / 2), what=f"{n} Symphony executions", procs=self.procs)
        done = time.time()
        last = (
            ExecutionEvent.objects.filter(execution_id__gte=low, execution_id__lte=high, to_state="COMPLETED")
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
            .timestamp()
        )
        return self._figures(n, t0, done, last, submit_s)

    @staticmethod
    def _figures(n, t0, done, last, enqueue_s) -> dict:
        return {
            "n": n,
            "seconds": round(done - t0, 4),
            "per_second": round(n / (done - t0), 1),
            "seconds_to_last_finish": round(last - t0, 4),
            "per_second_to_last_finish": round(n / (last - t0), 1),
            "enqueue_seconds": round(enqueue_s, 4),
            "enqueue_per_second": round(n / enqueue_s, 1),
        }

    # idle latency

    def symphony_latency(self) -> dict:
        from executions.models import Execution, ExecutionEvent
        from executions.services import execution_submit

        pickup, prepare, total, run = [], [], [], []
        for _ in range(self.args.samples):
            time.sleep(random.uniform(0.005, 0.025))  # do not beat in step with the broker's poll
            pk = execution_submit(agent=self.agent, input_data={}, max_attempts=1).pk
            wait_for(
                lambda pk=pk: Execution.objects.filter(pk=pk, state="COMPLETED").exists(),
                timeout=30, what=f"execution {pk}", interval=0.005, procs=self.procs,
            )  # fmt: skip
            at = {
                to: created.timestamp()
                for to, created in ExecutionEvent.objects.filter(execution_id=pk, kind="state").values_list(
                    "to_state", "created_at"
                )
            }
            pickup.append(at["PREPARING"] - at["QUEUED"])
            prepare.append(at["RUNNING"] - at["PREPARING"])
            total.append(at["RUNNING"] - at["QUEUED"])
            run.append(at["COMPLETED"] - at["RUNNING"])
        self.idle()
        return {
            "submit_to_running": summary(total),
            "queued_to_preparing": summary(pickup),
            "preparing_to_running": summary(prepare),
            "running_to_completed": summary(run),
        }

    def raw_latency(self) -> dict:
        from django_q.tasks import async_task

        marker, latencies = self.new_marker(), []
        for count in range(1, self.args.samples + 1):
            time.sleep(random.uniform(0.005, 0.025))
            t0 = time.time()
            async_task("bench.noop.noop", str(marker), broker=self.broker)
            wait_for(
                lambda count=count: len(self.read_marks(marker)) >= count,
                timeout=30, what="a raw task", interval=0.002, procs=self.procs,
            )  # fmt: skip
            latencies.append(self.read_marks(marker)[-1] - t0)
        self.idle()
        return {"enqueue_to_start": summary(latencies)}


def summary(seconds: list[float]) -> dict:
    ms = sorted(value * 1000 for value in seconds)
    cuts = statistics.quantiles(ms, n=100, method="inclusive")
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p90_ms": round(cuts[89], 2),
        "p99_ms": round(cuts[98], 2),
        "mean_ms": round(statistics.fmean(ms), 2),
        "max_ms": round(ms[-1], 2),
    }


# Report -------------------------------------------------------------------------------

PHASES = (
    ("raw django-q2, bare   tasks/s", "raw"),
    ("raw django-q2, stored tasks/s", "raw_stored"),
    ("Symphony noop agent   exec/s", "symphony"),
)


def text_report(results: dict) -> str:
    config, tp, lat = results["config"], results["throughput"], results["latency"]
    targets = TARGETS[config["broker"]]
    lines = [
        f"Symphony benchmark: {config['database']} + {config['broker']} broker, {config['workers']} workers, "
        f"N={config['n']}, {config['rounds']} rounds, {os.cpu_count()} CPUs, "
        f"poll={config['poll']}s queue_limit={config['queue_limit']}"
        + (f" {' '.join(config['environment'])}" if config["environment"] else ""),
        "",
        f"{'burst throughput (cluster warm)':<38}"
        + "".join(f"{'round ' + str(i + 1):>10}" for i in range(len(tp["raw"])))
        + f"{'median':>10}",
    ]
    for label, key in PHASES:
        rows = tp[key]
        lines.append(
            f"  {label:<36}" + "".join(f"{row['per_second']:>10.0f}" for row in rows) + f"{tp[key + '_median']:>10.0f}"
        )
    for label, key, target in (
        ("ratio Symphony/stored raw", "ratio_vs_stored", targets["vs_stored"]),
        ("ratio Symphony/bare raw", "ratio", targets["vs_bare"]),
    ):
        met = tp[key] >= target
        lines.append(
            f"  {label:<36}" + " " * 10 * len(tp["raw"]) + f"{tp[key]:>10.2f}   target >= {target:g}  "
            f"{'met' if met else 'MISSED'}"
        )
    lines.append(
        f"  {'(to last finish, not ack) vs bare':<36}"
        + " " * 10 * len(tp["raw"])
        + f"{tp['ratio_to_last_finish']:>10.2f}"
    )
    lines.append(
        f"  {'enqueue rate (bench process)':<36}raw {tp['raw_enqueue_per_second']:.0f}/s, "
        f"Symphony execution_submit {tp['symphony_submit_per_second']:.0f}/s"
    )
    lines += ["", f"{'idle latency (ms)':<38}{'n':>6}{'p50':>9}{'p90':>9}{'p99':>9}{'max':>9}"]
    rows = [
        ("Symphony submit -> RUNNING", lat["symphony"]["submit_to_running"]),
        ("  QUEUED -> PREPARING (pickup, claim)", lat["symphony"]["queued_to_preparing"]),
        ("  PREPARING -> RUNNING (build agent)", lat["symphony"]["preparing_to_running"]),
        ("  RUNNING -> COMPLETED", lat["symphony"]["running_to_completed"]),
        ("raw enqueue -> task start", lat["raw"]["enqueue_to_start"]),
    ]
    for label, row in rows:
        figures = "".join(f"{row[key]:>9.1f}" for key in ("p50_ms", "p90_ms", "p99_ms", "max_ms"))
        lines.append(f"  {label:<36}{row['n']:>6}{figures}")
    p50 = lat["symphony"]["submit_to_running"]["p50_ms"]
    lines.append(f"  target p50 <= {targets['p50_ms']:g} ms: {'met' if p50 <= targets['p50_ms'] else 'MISSED'}")
    return "\n".join(lines)


def result_rows(results: dict) -> list[dict]:
    """The contract's rows (bench/report.py): the issue-8 figures with their targets."""
    config, tp, lat = results["config"], results["throughput"], results["latency"]
    targets = TARGETS[config["broker"]]
    shape = f"{config['database']}+{config['broker']}"
    n = f"N={config['n']}, median of {config['rounds']}"
    return [
        report.row(f"throughput vs stored-results django-q2 ({shape})", tp["ratio_vs_stored"], "x",
                   f">= {targets['vs_stored']:g}",
                   f"{tp['symphony_median']:.0f} exec/s vs {tp['raw_stored_median']:.0f} tasks/s, {n}"),
        report.row(f"throughput vs bare django-q2 ({shape})", tp["ratio"], "x", f">= {targets['vs_bare']:g}",
                   f"{tp['symphony_median']:.0f} exec/s vs {tp['raw_median']:.0f} tasks/s, {n}"),
        report.row(f"idle submit -> RUNNING p50 ({shape})", lat["symphony"]["submit_to_running"]["p50_ms"], "ms",
                   f"<= {targets['p50_ms']:g}",
                   f"p99 {lat['symphony']['submit_to_running']['p99_ms']:.1f} ms, {config['samples']} samples"),
    ]  # fmt: skip


# Main ---------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    with Install(
        database_url=args.database_url, redis_url=args.redis_url, workers=args.workers, log_level=args.log_level,
        sets=args.set, keep=args.keep,
    ) as install:  # fmt: skip
        from django.conf import settings
        from django.db import connection

        started = time.time()
        procs = [install.start_worker(), install.start_dispatcher()]
        bench = Bench(args, install.workdir, procs)

        # Warm up: workers forked and every import done, so bursts measure steady work.
        from django_q.tasks import async_task

        from executions.services import execution_submit

        marker = bench.new_marker()
        async_task("bench.noop.noop", str(marker), broker=bench.broker)
        wait_for(lambda: marker.stat().st_size > 0, timeout=60, what="the cluster to start", procs=procs)
        cold_start = time.time() - started
        for _ in range(2 * args.workers):
            async_task("bench.noop.noop", str(marker), broker=bench.broker)
            async_task("bench.noop.noop", group="bench-warm-up", save=True, broker=bench.broker)
            execution_submit(agent=bench.agent, input_data={}, max_attempts=1)
        from executions.models import Execution

        wait_for(lambda: not Execution.objects.exclude(state="COMPLETED").exists(), timeout=60, what="warm-up")
        bench.idle()

        phases = {"raw": bench.raw_burst, "raw_stored": bench.raw_stored_burst, "symphony": bench.symphony_burst}
        measured: dict[str, list[dict]] = {name: [] for name in phases}
        order = list(phases)
        for round_number in range(args.rounds):
            for name in order[round_number % 3 :] + order[: round_number % 3]:  # rotated: no phase always first
                with bench.profiled(f"{name}-{round_number + 1}"):
                    measured[name].append(phases[name]())
                bench.idle()
                print(
                    f"round {round_number + 1} {name:<10} {measured[name][-1]['per_second']:>8.0f}/s", file=sys.stderr
                )
        print("idle latency...", file=sys.stderr)
        latency = {"symphony": bench.symphony_latency(), "raw": bench.raw_latency()}

        medians = {name: statistics.median(row["per_second"] for row in rows) for name, rows in measured.items()}
        raw, symphony = measured["raw"], measured["symphony"]
        results = {
            "machine": report.machine(args.database_url),
            "config": {
                "n": args.n,
                "workers": args.workers,
                "rounds": args.rounds,
                "samples": args.samples,
                "database": connection.vendor,
                "broker": "redis" if bench.redis else "orm",
                "poll": settings.Q_CLUSTER["poll"],
                "queue_limit": settings.Q_CLUSTER["queue_limit"],
                "log_level": args.log_level,
                "environment": args.set,
            },
            "cold_start_seconds": round(cold_start, 2),
            "throughput": {
                **measured,
                **{f"{name}_median": value for name, value in medians.items()},
                "ratios": [round(s["per_second"] / r["per_second"], 3) for r, s in zip(raw, symphony, strict=True)],
                "ratio": round(medians["symphony"] / medians["raw"], 3),
                "ratio_vs_stored": round(medians["symphony"] / medians["raw_stored"], 3),
                "ratio_to_last_finish": round(
                    statistics.median(s["per_second_to_last_finish"] for s in symphony)
                    / statistics.median(r["per_second_to_last_finish"] for r in raw),
                    3,
                ),
                "raw_enqueue_per_second": statistics.median(row["enqueue_per_second"] for row in raw),
                "symphony_submit_per_second": statistics.median(row["enqueue_per_second"] for row in symphony),
            },
            "latency": latency,
        }
        rows = result_rows(results)
        shape = f"{results['config']['database']}+{results['config']['broker']}"
        output = report.write(args.output, name=f"throughput ({shape})", rows=rows, **results)
        print(text_report(results))
        print(f"\nresults: {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
