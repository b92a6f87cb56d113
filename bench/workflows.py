#!/usr/bin/env python
"""Workflows: per-step overhead of chains and fan-outs against plain executions, and how they scale.

    .venv/bin/python bench/workflows.py                 # 1,000 and 10,000 steps, SQLite + ORM broker
    .venv/bin/python bench/workflows.py --quick         # 200 and 2,000 steps
    .venv/bin/python bench/workflows.py --database-url postgres://postgres@127.0.0.1:5432/symphony \\
        --redis-url redis://127.0.0.1:6379/15 --output bench/results/workflows-postgres-redis.json

One run, one fresh database, one ``manage.py symphony worker`` cluster and one
dispatcher started as the Procfile starts them (see bench/throughput.py, whose
set-up this reuses). This process plays the web process: it submits the plain
executions and starts the workflow runs. See bench/README.md for what is
measured and how to read it.
"""

import argparse
import contextlib
import json
import os
import platform
import re
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.install import PYTHON, Process, forget_cluster, fresh_postgres, wait_for  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "workflows.json"
TARGET_OVERHEAD = 1.5  # a workflow step's time / a plain execution's, same size, same run
TARGET_SCALE = 12.0  # time(10k) / time(1k) of the same shape
AGENT = "bench-noop"


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--small", type=int, default=1_000, help="steps of the small runs (default 1,000)")
    parser.add_argument("--large", type=int, default=10_000, help="steps of the large runs (default 10,000)")
    parser.add_argument("--quick", action="store_true", help="--small 200 --large 2000, one round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the small plain/chain/fan-out trio (2)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes (SYMPHONY_WORKERS, default 2)")
    parser.add_argument("--database-url", default="", help="PostgreSQL server: a fresh database is created on it")
    parser.add_argument("--redis-url", default="", help="Redis for the broker and channel layer (use a spare db)")
    parser.add_argument("--log-level", default="WARNING", help="SYMPHONY_LOG_LEVEL for all processes (WARNING)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="extra environment")
    parser.add_argument("--output", default=str(RESULTS), help="JSON results; the Markdown table goes beside it")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite file)")
    args = parser.parse_args()
    if args.quick:
        args.small, args.large, args.rounds = 200, 2_000, 1
    return args


# Memory ---------------------------------------------------------------------------------


def _status_kb(pid: int | str, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE)
    return int(match.group(1)) if match else 0


class Memory:
    """Peak resident memory (Linux ``VmHWM``) per process, reset at the start of each scenario.

    The worker cluster's processes are found from its leader each time (django-q2
    may replace a worker); a process that ended keeps the peak last read.
    """

    def __init__(self, roles: dict[str, int]):
        self.roles = roles  # role -> leader pid
        self.peaks: dict[str, dict[int, int]] = {}

    def _pids(self, leader: int) -> list[int]:
        import psutil

        try:
            parent = psutil.Process(leader)
            return [parent.pid, *(child.pid for child in parent.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def reset(self) -> None:
        self.peaks = {role: {} for role in [*self.roles, "starter"]}
        for pid in ["self", *(pid for leader in self.roles.values() for pid in self._pids(leader))]:
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # resets VmHWM to the current RSS

    def sample(self) -> None:
        for role, leader in self.roles.items():
            for pid in self._pids(leader):
                peak = _status_kb(pid, "VmHWM")
                self.peaks[role][pid] = max(peak, self.peaks[role].get(pid, 0))
        self.peaks["starter"][os.getpid()] = _status_kb("self", "VmHWM")

    def figures(self) -> dict:
        """Per role, the largest single process's peak (MB); forked processes share pages, so no sums."""
        self.sample()
        return {role: round(max(peaks.values(), default=0) / 1024, 1) for role, peaks in self.peaks.items()}


# Scenarios ------------------------------------------------------------------------------


def definition(shape: str, steps: int) -> dict:
    """A chain (each step after the one before) or a fan-out (one root, then steps - 1 after it) of no-ops."""
    from workflows.builder import Workflow

    wf = Workflow(f"bench-{shape}-{steps}", description=f"{shape} of {steps} no-op steps")
    first = wf.step("s0", agent=AGENT)
    previous = first
    for number in range(1, steps):
        previous = wf.step(f"s{number}", agent=AGENT, depends_on=previous if shape == "chain" else first)
    return wf.to_dict()


class Bench:
    def __init__(self, args, procs: list[Process], memory: Memory):
        from routing.models import AgentConfig

        self.args, self.procs, self.memory = args, procs, memory
        self.agent, _ = AgentConfig.objects.update_or_create(
            name=AGENT, defaults={"settings": {"path": "bench.noop.noop_agent"}}
        )

    def wait(self, check, *, steps: int, what: str):
        """Poll for the end every 0.2 s and sample memory every second: the figures come from the
        database's own timestamps, so slower polling costs no accuracy and leaves the CPUs to the workers."""
        last_sample = 0.0

        def sampled():
            nonlocal last_sample
            if time.monotonic() - last_sample >= 1.0:
                self.memory.sample()
                last_sample = time.monotonic()
            return check()

        return wait_for(sampled, timeout=120 + steps * 0.2, what=what, interval=0.2, procs=self.procs)

    def plain(self, n: int) -> dict:
        """N executions of the no-op agent submitted in one transaction, as the engine submits a fan-out."""
        from django.db import transaction

        from executions.models import Execution, ExecutionEvent
        from executions.services import execution_submit

        self.memory.reset()
        t0 = time.time()
        with transaction.atomic():
            ids = [execution_submit(agent=self.agent, input_data={}, max_attempts=1).pk for _ in range(n)]
        submitted = time.time() - t0
        batch = Execution.objects.filter(pk__gte=min(ids), pk__lte=max(ids))

        def finished():
            if batch.exclude(state__in=["QUEUED", "PREPARING", "RUNNING", "COMPLETED"]).exists():
                raise SystemExit(f"executions failed: {list(batch.exclude(state='COMPLETED').values('pk', 'error'))}")
            return batch.filter(state="COMPLETED").count() == n

        self.wait(finished, steps=n, what=f"{n} plain executions")
        last = (
            ExecutionEvent.objects.filter(execution_id__in=ids, to_state="COMPLETED")
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        return self._figures("plain", n, t0, last.timestamp(), submitted, define_seconds=0.0)

    def workflow(self, shape: str, n: int) -> dict:
        from workflows.models import RUN_FINISHED, WorkflowRun
        from workflows.services import workflow_definition_save, workflow_run_start

        source = definition(shape, n)
        started = time.time()
        workflow_definition_save(source=source)
        define_seconds = time.time() - started
        self.memory.reset()
        t0 = time.time()
        run = workflow_run_start(definition=source["name"])
        submitted = time.time() - t0
        rows = WorkflowRun.objects.filter(pk=run.pk)
        self.wait(lambda: rows.filter(status__in=RUN_FINISHED).exists(), steps=n, what=f"a {n}-step {shape}")
        run.refresh_from_db()
        if run.status != "COMPLETED":
            raise SystemExit(f"the {shape} of {n} ended {run.status}: {run.error}")
        return self._figures(shape, n, t0, run.finished_at.timestamp(), submitted, define_seconds=define_seconds)

    def _figures(self, shape, n, t0, end, submitted, *, define_seconds) -> dict:
        seconds = end - t0
        figures = {
            "shape": shape,
            "steps": n,
            "seconds": round(seconds, 3),
            "ms_per_step": round(1000 * seconds / n, 3),
            "start_seconds": round(submitted, 3),
            "define_seconds": round(define_seconds, 3),
            "peak_rss_mb": self.memory.figures(),
        }
        print(f"  {shape:<7} {n:>6} steps {seconds:>8.2f} s  {figures['ms_per_step']:>6.2f} ms/step", file=sys.stderr)
        return figures


# Report ---------------------------------------------------------------------------------


def summarise(results: dict) -> dict:
    small = {shape: statistics.median(row["seconds"] for row in rows) for shape, rows in results["small"].items()}
    large = {row["shape"]: row["seconds"] for row in results["large"]}
    ratios = {
        "chain_overhead": small["chain"] / small["plain"],
        "fanout_overhead": small["fanout"] / small["plain"],
        "chain_scale": large["chain"] / small["chain"],
        "fanout_scale": large["fanout"] / small["fanout"],
        "plain_scale": large["plain"] / small["plain"],
    }
    ratios = {name: round(value, 3) for name, value in ratios.items()}
    return {
        "ratios": ratios,
        "targets": {
            "overhead_max": TARGET_OVERHEAD,
            "scale_max": TARGET_SCALE,
            "chain_overhead_met": ratios["chain_overhead"] <= TARGET_OVERHEAD,
            "fanout_overhead_met": ratios["fanout_overhead"] <= TARGET_OVERHEAD,
            "chain_scale_met": ratios["chain_scale"] <= TARGET_SCALE,
            "fanout_scale_met": ratios["fanout_scale"] <= TARGET_SCALE,
        },
    }


def result_rows(results: dict) -> list[dict]:
    """The contract's rows (bench/report.py): issue 7's ratios with their targets, the medians as notes."""
    ratios, small, large = results["summary"]["ratios"], results["config"]["small"], results["config"]["large"]
    shape = f"{results['config']['database']}+{results['config']['broker']}"
    seconds = {shape_: statistics.median(r["seconds"] for r in rows) for shape_, rows in results["small"].items()}
    big = {row["shape"]: row["seconds"] for row in results["large"]}
    overhead, scale = f"<= {TARGET_OVERHEAD:g}", f"<= {TARGET_SCALE:g}"
    return [
        report.row(f"workflow chain / plain executions, {small:,} steps ({shape})", ratios["chain_overhead"], "x",
                   overhead, f"{seconds['chain']:.1f} s vs {seconds['plain']:.1f} s"),
        report.row(f"workflow fan-out / plain executions, {small:,} steps ({shape})", ratios["fanout_overhead"], "x",
                   overhead, f"{seconds['fanout']:.1f} s vs {seconds['plain']:.1f} s"),
        report.row(f"workflow chain {large:,} / {small:,} steps ({shape})", ratios["chain_scale"], "x", scale,
                   f"{big['chain']:.1f} s; linear would be {large / small:g}x"),
        report.row(f"workflow fan-out {large:,} / {small:,} steps ({shape})", ratios["fanout_scale"], "x", scale,
                   f"{big['fanout']:.1f} s; linear would be {large / small:g}x"),
    ]  # fmt: skip


def markdown(results: dict) -> str:
    config, summary = results["config"], results["summary"]
    ratios, targets = summary["ratios"], summary["targets"]
    small, large = config["small"], config["large"]
    lines = [
        f"# Workflows benchmark ({results['finished_at']})",
        "",
        f"{config['database']} + {config['broker']} broker, {config['workers']} workers, "
        f"{results['machine']['cpus']} CPUs, small runs: median of {config['rounds']} round(s).",
        "",
        "| run | steps | seconds | ms/step | start (s) | peak RSS worker / dispatcher / starter (MB) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    rows = [row for rows in results["small"].values() for row in rows] + results["large"]
    for row in rows:
        rss = row["peak_rss_mb"]
        lines.append(
            f"| {row['shape']} | {row['steps']:,} | {row['seconds']:.2f} | {row['ms_per_step']:.2f} | "
            f"{row['start_seconds']:.2f} | {rss['worker']} / {rss['dispatcher']} / {rss['starter']} |"
        )

    def verdict(met: bool) -> str:
        return "met" if met else "**missed**"

    lines += [
        "",
        "| ratio | value | target | |",
        "| --- | ---: | ---: | --- |",
        f"| chain {small:,} / plain {small:,} | {ratios['chain_overhead']:.2f} | ≤ {TARGET_OVERHEAD} | "
        f"{verdict(targets['chain_overhead_met'])} |",
        f"| fan-out {small:,} / plain {small:,} | {ratios['fanout_overhead']:.2f} | ≤ {TARGET_OVERHEAD} | "
        f"{verdict(targets['fanout_overhead_met'])} |",
        f"| chain {large:,} / chain {small:,} | {ratios['chain_scale']:.2f} | ≤ {TARGET_SCALE:g} | "
        f"{verdict(targets['chain_scale_met'])} |",
        f"| fan-out {large:,} / fan-out {small:,} | {ratios['fanout_scale']:.2f} | ≤ {TARGET_SCALE:g} | "
        f"{verdict(targets['fanout_scale_met'])} |",
        f"| plain {large:,} / plain {small:,} (reference) | {ratios['plain_scale']:.2f} | | |",
    ]
    return "\n".join(lines) + "\n"


# Main -----------------------------------------------------------------------------------


def environment(args, workdir: Path) -> dict:
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
    return env


def _stop(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")  # so the cleanup below stops the cluster and the dispatcher


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _stop)
    workdir = Path(tempfile.mkdtemp(prefix="symphony-bench-wf-"))
    log_dir = workdir / "logs"
    log_dir.mkdir()
    with contextlib.ExitStack() as cleanup:
        if not args.keep:
            cleanup.callback(shutil.rmtree, workdir, ignore_errors=True)
        env = environment(args, workdir)
        if args.database_url:
            env["DATABASE_URL"] = cleanup.enter_context(fresh_postgres(args.database_url))
        if args.redis_url:
            env["REDIS_URL"] = args.redis_url
            env["SYMPHONY_Q_CLUSTER_NAME"] = f"symphony-bench-{uuid.uuid4().hex[:8]}"
            cleanup.callback(forget_cluster, args.redis_url, env["SYMPHONY_Q_CLUSTER_NAME"])
        os.environ.clear()
        os.environ.update(env)
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)

        import django

        django.setup()
        from django.db import connection

        procs = [
            Process("worker", [PYTHON, "manage.py", "symphony", "worker"], env, log_dir),
            Process("dispatcher", [PYTHON, "manage.py", "symphony", "dispatcher"], env, log_dir),
        ]
        for proc in procs:
            cleanup.callback(proc.stop)
        memory = Memory({"worker": procs[0].popen.pid, "dispatcher": procs[1].popen.pid})
        bench = Bench(args, procs, memory)

        print("warm-up...", file=sys.stderr)
        bench.plain(4 * args.workers)
        bench.workflow("chain", 3)

        results = {"small": {"plain": [], "chain": [], "fanout": []}, "large": []}
        for round_number in range(1, args.rounds + 1):
            print(f"round {round_number}: {args.small:,} steps", file=sys.stderr)
            results["small"]["plain"].append(bench.plain(args.small))
            results["small"]["chain"].append(bench.workflow("chain", args.small))
            results["small"]["fanout"].append(bench.workflow("fanout", args.small))
        print(f"{args.large:,} steps", file=sys.stderr)
        results["large"] = [bench.plain(args.large), bench.workflow("chain", args.large)]
        results["large"].append(bench.workflow("fanout", args.large))

        results = {
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "config": {
                "small": args.small,
                "large": args.large,
                "rounds": args.rounds,
                "workers": args.workers,
                "database": connection.vendor,
                "broker": "redis" if args.redis_url else "orm",
                "log_level": args.log_level,
                "environment": args.set,
            },
            **results,
        }
        results["summary"] = summarise(results)
        results = {"name": "workflows", "rows": result_rows(results), **results}
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n")
        table = markdown(results)
        output.with_suffix(".md").write_text(table)
        print(table)
        print(f"results: {output} and {output.with_suffix('.md')}" + (f"\nlogs: {log_dir}" if args.keep else ""))
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
