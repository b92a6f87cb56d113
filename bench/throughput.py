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
import json
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
RESULTS = ROOT / "bench" / "results" / "latest.json"
STAGING = f"bench-staging-{uuid.uuid4().hex[:8]}"  # holds a burst until it is released at once
TARGET_RATIO = 1.0
TARGET_P50_MS = 15.0


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500, help="tasks/executions per burst (default 500)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (SYMPHONY_WORKERS, default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="raw/Symphony burst pairs, alternated (default 2)")
    parser.add_argument("--samples", type=int, default=200, help="idle latency samples (default 200)")
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
    return parser.parse_args()


# Setup --------------------------------------------------------------------------------


def with_path(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + database, parts.query, parts.fragment))


@contextlib.contextmanager
def fresh_postgres(base_url: str):
    import psycopg

    name = f"symphony_bench_{uuid.uuid4().hex[:10]}"
    admin_url = with_path(base_url, "postgres")
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_path(base_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class Process:
    def __init__(self, name: str, argv: list[str], env: dict, log_dir: Path):
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip

    def check(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log_path.read_text(errors="replace")[-4000:]
            raise SystemExit(f"{self.name} exited with code {self.popen.returncode}:\n{tail}")

    def stop(self) -> None:
        # SIGTERM to the leader: a worker cluster forwards it to its children and stops
        # within its stop bound; then SIGKILL the group, whatever is left.
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)


def wait_for(check, *, timeout: float, what: str, interval: float = 0.01, procs=()):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for proc in procs:
            proc.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# Measurements -------------------------------------------------------------------------


class Bench:
    def __init__(self, args, workdir: Path, procs: list[Process]):
        from django.conf import settings
        from django_q.brokers import get_broker
        from django_q.conf import Conf

        from routing.models import AgentConfig

        self.args, self.workdir, self.procs = args, workdir, procs
        self.redis = "redis" in settings.Q_CLUSTER
        self.cluster_name = Conf.CLUSTER_NAME
        self.broker = get_broker()  # one reused broker (async_task would build one per call)
        self.staging = get_broker(STAGING)
        self.agent, _ = AgentConfig.objects.update_or_create(
            name="bench-noop", defaults={"settings": {"path": "bench.noop.noop_agent"}}
        )
        self.marks = 0

    # broker plumbing

    def queued(self, key: str | None = None) -> int:
        """Messages not yet acknowledged (ORM: rows, locked or not; Redis: list length)."""
        if self.redis:
            return self.broker.connection.llen(self.staging.list_key if key == STAGING else self.broker.list_key)
        from django_q.models import OrmQ

        return OrmQ.objects.filter(key=key or self.cluster_name).count()

    def release(self) -> float:
        """Make the staged burst visible to the cluster in one step; returns when that happened."""
        assert self.queued() == 0, "the cluster's queue is not empty"
        t0 = time.time()
        if self.redis:
            self.broker.connection.rename(self.staging.list_key, self.broker.list_key)
        else:
            from django_q.models import OrmQ

            OrmQ.objects.filter(key=STAGING).update(key=self.cluster_name)
        return t0

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

    # Symphony

    def symphony_burst(self) -> dict:
        from executions import wakeups
        from executions.models import Execution, ExecutionEvent
        from executions.services import execution_submit

        n = self.args.n
        # Workers claim from the execution table and the wake-ups go to the staging queue;
        # the dispatcher, which wakes workers for work left waiting, is paused until the release.
        dispatcher = self.procs[1].popen.pid
        os.kill(dispatcher, signal.SIGSTOP)
        wakeups._broker, wakeups._broker_pid = self.staging, os.getpid()  # submit into the staging queue
        try:
            started = time.perf_counter()
            ids = [execution_submit(agent=self.agent, input_data={}, max_attempts=1).pk for _ in range(n)]
            submit_s = time.perf_counter() - started
            wakeups._broker = None
            low, high = min(ids), max(ids)
            batch = Execution.objects.filter(pk__gte=low, pk__lte=high)
            t0 = self.release()
        finally:
            wakeups._broker = None
            os.kill(dispatcher, signal.SIGCONT)

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


def report(results: dict) -> str:
    config, tp, lat = results["config"], results["throughput"], results["latency"]
    lines = [
        f"Symphony benchmark: {config['database']} + {config['broker']} broker, {config['workers']} workers, "
        f"N={config['n']}, {config['rounds']} rounds, {results['machine']['cpus']} CPUs, "
        f"poll={config['poll']}s queue_limit={config['queue_limit']}"
        + (f" {' '.join(config['environment'])}" if config["environment"] else ""),
        "",
        f"{'burst throughput (cluster warm)':<38}"
        + "".join(f"{'round ' + str(i + 1):>10}" for i in range(len(tp["raw"])))
        + f"{'median':>10}",
    ]
    for label, key in (("raw django-q2 noop     tasks/s", "raw"), ("Symphony noop agent    exec/s", "symphony")):
        rows = tp[key]
        lines.append(
            f"  {label:<36}" + "".join(f"{row['per_second']:>10.0f}" for row in rows) + f"{tp[key + '_median']:>10.0f}"
        )
    lines.append(
        f"  {'ratio Symphony/raw':<36}"
        + "".join(f"{r:>10.2f}" for r in tp["ratios"])
        + f"{tp['ratio']:>10.2f}   target >= {TARGET_RATIO:.1f}  {'OK' if tp['ratio'] >= TARGET_RATIO else 'MISS'}"
    )
    lines.append(
        f"  {'(to last finish, not ack) ratio':<36}"
        + " " * 10 * len(tp["ratios"])
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
    lines.append(f"  target p50 <= {TARGET_P50_MS:g} ms: {'OK' if p50 <= TARGET_P50_MS else 'MISS'}")
    return "\n".join(lines)


# Main ---------------------------------------------------------------------------------


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="symphony-bench-"))
    log_dir = workdir / "logs"
    log_dir.mkdir()
    procs: list[Process] = []
    with contextlib.ExitStack() as cleanup:
        if not args.keep:
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMPHONY_", "DJANGO_", "DATABASE_"))}
        env.pop("REDIS_URL", None)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "symphony.settings",
                "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
                "DJANGO_DEBUG": "0",
                "SYMPHONY_VAR_DIR": str(workdir / "var"),
                "SYMPHONY_SQLITE_PATH": str(workdir / "symphony.sqlite3"),
                "SYMPHONY_WORKERS": str(args.workers),
                "SYMPHONY_LOG_LEVEL": args.log_level,
                "PYTHONUNBUFFERED": "1",
            }
        )
        for item in args.set:
            name, _, value = item.partition("=")
            env[name] = value
        if args.database_url:
            env["DATABASE_URL"] = cleanup.enter_context(fresh_postgres(args.database_url))
        if args.redis_url:
            env["REDIS_URL"] = args.redis_url
            env["SYMPHONY_Q_CLUSTER_NAME"] = f"symphony-bench-{uuid.uuid4().hex[:8]}"
        os.environ.clear()
        os.environ.update(env)
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)

        import django

        django.setup()
        from django.conf import settings
        from django.db import connection

        if args.redis_url:
            cleanup.callback(forget_cluster, args.redis_url, env["SYMPHONY_Q_CLUSTER_NAME"])

        started = time.time()
        procs.append(Process("worker", [PYTHON, "manage.py", "symphony", "worker"], env, log_dir))
        procs.append(Process("dispatcher", [PYTHON, "manage.py", "symphony", "dispatcher"], env, log_dir))
        for proc in procs:
            cleanup.callback(proc.stop)
        bench = Bench(args, workdir, procs)

        # Warm up: workers forked and every import done, so bursts measure steady work.
        from django_q.tasks import async_task

        from executions.services import execution_submit

        marker = bench.new_marker()
        async_task("bench.noop.noop", str(marker), broker=bench.broker)
        wait_for(lambda: marker.stat().st_size > 0, timeout=60, what="the cluster to start", procs=procs)
        cold_start = time.time() - started
        for _ in range(2 * args.workers):
            async_task("bench.noop.noop", str(marker), broker=bench.broker)
            execution_submit(agent=bench.agent, input_data={}, max_attempts=1)
        from executions.models import Execution

        wait_for(lambda: not Execution.objects.exclude(state="COMPLETED").exists(), timeout=60, what="warm-up")
        bench.idle()

        raw, symphony = [], []
        for round_number in range(args.rounds):
            for name, run, into in (("raw", bench.raw_burst, raw), ("symphony", bench.symphony_burst, symphony)):
                with bench.profiled(f"{name}-{round_number + 1}"):
                    into.append(run())
                bench.idle()
                print(f"round {round_number + 1} {name:<8} {into[-1]['per_second']:>8.0f}/s", file=sys.stderr)
        print("idle latency...", file=sys.stderr)
        latency = {"symphony": bench.symphony_latency(), "raw": bench.raw_latency()}

        raw_median = statistics.median(row["per_second"] for row in raw)
        symphony_median = statistics.median(row["per_second"] for row in symphony)
        results = {
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
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
                "raw": raw,
                "symphony": symphony,
                "raw_median": raw_median,
                "symphony_median": symphony_median,
                "ratios": [round(s["per_second"] / r["per_second"], 3) for r, s in zip(raw, symphony, strict=True)],
                "ratio": round(symphony_median / raw_median, 3),
                "ratio_to_last_finish": round(
                    statistics.median(s["per_second_to_last_finish"] for s in symphony)
                    / statistics.median(r["per_second_to_last_finish"] for r in raw),
                    3,
                ),
                "raw_enqueue_per_second": statistics.median(row["enqueue_per_second"] for row in raw),
                "symphony_submit_per_second": statistics.median(row["enqueue_per_second"] for row in symphony),
            },
            "latency": latency,
            "targets": {
                "ratio_min": TARGET_RATIO,
                "p50_ms_max": TARGET_P50_MS,
            },
        }
        results["targets"]["ratio_met"] = results["throughput"]["ratio"] >= TARGET_RATIO
        results["targets"]["p50_met"] = latency["symphony"]["submit_to_running"]["p50_ms"] <= TARGET_P50_MS
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n")
        print(report(results))
        print(f"\nresults: {output}" + (f"\nlogs: {log_dir}" if args.keep else ""))
        connection.close()
    return 0


def forget_cluster(redis_url: str, cluster: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"django_q:{cluster}:*")) + list(client.scan_iter(match=f"django_q:{STAGING}:*"))
    if keys:
        client.delete(*keys)
    client.close()


if __name__ == "__main__":
    sys.exit(main())
