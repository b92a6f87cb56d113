#!/usr/bin/env python
"""Websocket fan-out: many clients on one running execution's event stream, event commit -> each client.

    .venv/bin/python bench/websocket_fanout.py [--quick] [--clients 200] [--events 300]
    .venv/bin/python bench/websocket_fanout.py --database-url postgres://postgres@127.0.0.1:5432/symphony \\
        --redis-url redis://127.0.0.1:6379/11

One run, one fresh install (a SQLite file in a temp dir, or a new PostgreSQL
database dropped afterwards; with --redis-url the channel layer and broker on
Redis), daphne, ``manage.py symphony worker`` and ``manage.py symphony
dispatcher`` started as the Procfile does. The clients log in over HTTP, open
``ws/executions/<id>/?after=0`` with the session cookie and read until the
execution's last event. See bench/README.md for what is measured.
"""

import argparse
import asyncio
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
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

from bench.throughput import PYTHON, Process, forget_cluster, fresh_postgres, wait_for  # noqa: E402

DAPHNE = str(ROOT / ".venv" / "bin" / "daphne") if (ROOT / ".venv" / "bin" / "daphne").exists() else "daphne"
RESULTS = ROOT / "bench" / "results" / "websocket_fanout.json"
TARGET_P99_MS = 50.0
ADMIN_PASSWORD = "bench-" + secrets.token_urlsafe(16)
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMED_OUT"}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 clients, 100 events (under a minute)")
    parser.add_argument("--clients", type=int, help="websocket clients on the one execution (default 200)")
    parser.add_argument("--events", type=int, help="log lines the agent writes, one event each (default 300)")
    parser.add_argument("--interval", type=float, default=0.075, help="seconds between the agent's lines (0.075)")
    parser.add_argument("--database-url", default="", help="PostgreSQL server: a fresh database is created on it")
    parser.add_argument("--redis-url", default="", help="Redis for the channel layer and broker (use a spare db)")
    parser.add_argument("--log-level", default="WARNING", help="SYMPHONY_LOG_LEVEL for all processes (WARNING)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="extra environment for every process, e.g. --set SYMPHONY_RELAY_INTERVAL=0.1 (repeatable)",
    )  # fmt: skip
    parser.add_argument("--output", default=str(RESULTS), help=f"JSON results (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, SQLite file)")
    parser.add_argument("--profile", metavar="PATH", help="py-spy collapsed stacks of daphne while events flow")
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy", help="py-spy executable")
    args = parser.parse_args()
    args.clients = args.clients or (50 if args.quick else 200)
    args.events = args.events or (100 if args.quick else 300)
    return args


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def login(base_url: str) -> str:
    """Log in through the login page, as a browser does; returns the sessionid cookie."""
    import httpx

    with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
        page = client.get("/accounts/login/")
        token = re.search(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"', page.text).group(1)
        response = client.post(
            "/accounts/login/",
            data={"username": "admin", "password": ADMIN_PASSWORD, "csrfmiddlewaretoken": token, "next": "/"},
            headers={"Referer": base_url + "/accounts/login/"},
        )
        if response.status_code != 302 or not client.cookies.get("sessionid"):
            raise SystemExit(f"login failed: {response.status_code} {response.text[:500]}")
        return client.cookies["sessionid"]


# Clients ------------------------------------------------------------------------------------


class Client:
    """One websocket on the execution's event stream; notes each event's id, stamp and arrival time."""

    def __init__(self, number: int):
        self.number = number
        self.received: list[tuple[int, float, str, str | None]] = []  # (id, arrived, at, to_state)
        self.frames = 0
        self.done = asyncio.Event()
        self.error: str | None = None

    async def run(self, url: str, headers: dict, origin: str, connected: asyncio.Semaphore, opened) -> None:
        from websockets.asyncio.client import connect

        try:
            async with connected:
                ws = await connect(url, additional_headers=headers, origin=origin, open_timeout=60, max_queue=None)
            opened()
            async with ws:
                async for frame in ws:
                    arrived = time.time()
                    self.frames += 1
                    message = json.loads(frame)
                    for event in message if isinstance(message, list) else [message]:
                        self.received.append((event["id"], arrived, event["at"], event.get("to_state")))
                        if event.get("to_state") in FINISHED:
                            self.done.set()
                            return
        except Exception as exc:  # noqa: BLE001 - reported in the results
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.done.set()

    @property
    def last_id(self) -> int:
        return self.received[-1][0] if self.received else 0


async def loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    """How late the clients' own event loop wakes: the share of a latency the receiving side adds."""
    while not stop.is_set():
        planned = time.perf_counter() + 0.01
        await asyncio.sleep(0.01)
        lags.append(time.perf_counter() - planned)


# Measurements ------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def percentiles(values_ms: list[float]) -> dict:
    values = sorted(values_ms)
    if not values:
        return {"n": 0}
    cuts = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(values), 2),
        "p95_ms": round(cuts[94], 2),
        "p99_ms": round(cuts[98], 2),
        "max_ms": round(values[-1], 2),
    }


def delivery(clients: list[Client], expected: list[int]) -> dict:
    """Lost, duplicated and out-of-order events over every client, against the execution's events in the table."""
    lost = duplicated = out_of_order = 0
    wanted = set(expected)
    for client in clients:
        ids = [row[0] for row in client.received]
        lost += len(wanted - set(ids))
        duplicated += len(ids) - len(set(ids))
        out_of_order += sum(1 for a, b in zip(ids, ids[1:], strict=False) if b <= a)
    return {"lost": lost, "duplicated": duplicated, "out_of_order": out_of_order}


def latencies(clients: list[Client], since: float, stamps: dict[int, float]) -> tuple[list[float], list[float]]:
    """Per (client, event) created_at -> arrival, and agent's own stamp -> arrival, for events after ``since``."""
    from_row, from_agent = [], []
    for client in clients:
        for event_id, arrived, at, _ in client.received:
            created = datetime.fromisoformat(at).timestamp()
            if created < since:
                continue
            from_row.append((arrived - created) * 1000)
            if event_id in stamps:
                from_agent.append((arrived - stamps[event_id]) * 1000)
    return from_row, from_agent


# Main -----------------------------------------------------------------------------------------


async def watch(args, bench_dir: Path, procs, base_url: str, session: str, execution_id: int) -> dict:
    from asgiref.sync import sync_to_async

    from executions.models import Execution, ExecutionEvent

    web = procs[0].popen.pid
    url = f"ws://{base_url.removeprefix('http://')}/ws/executions/{execution_id}/?after=0"
    headers = {"Cookie": f"sessionid={session}"}
    clients = [Client(number) for number in range(args.clients)]
    opened_count = 0

    def opened():
        nonlocal opened_count
        opened_count += 1

    connecting = asyncio.Semaphore(50)
    started = time.perf_counter()
    tasks = [asyncio.ensure_future(c.run(url, headers, base_url, connecting, opened)) for c in clients]
    while opened_count < len(clients):
        failed = [c.error for c in clients if c.error]
        if failed:
            raise SystemExit(f"{len(failed)} clients failed to connect, e.g. {failed[0]}")
        await asyncio.sleep(0.05)
    connect_seconds = time.perf_counter() - started

    @sync_to_async
    def last_event_id() -> int:
        return ExecutionEvent.objects.filter(execution_id=execution_id).order_by("-id").values_list("id", flat=True)[0]

    caught_up = await last_event_id()
    while min(c.last_id for c in clients) < caught_up:
        await asyncio.sleep(0.05)

    # Idle: everyone watching, nothing happening (the relay, if any, keeps polling).
    idle_from, idle_cpu = time.perf_counter(), cpu_seconds(web)
    await asyncio.sleep(3.0)
    idle_percent = 100 * (cpu_seconds(web) - idle_cpu) / (time.perf_counter() - idle_from)

    lags: list[float] = []
    stop_lag = asyncio.Event()
    lag_task = asyncio.ensure_future(loop_lag(stop_lag, lags))
    spy = None
    if args.profile:
        spy = subprocess.Popen(
            [args.py_spy, "record", "--format", "raw", "--rate", "250", "--pid", str(web), "--output", args.profile],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        await asyncio.sleep(1.0)
    busy_cpu, frames_before = cpu_seconds(web), sum(c.frames for c in clients)
    gate_at = time.time()
    (bench_dir / "gate").touch()
    timeout = 60 + args.events * args.interval * 3
    try:
        await asyncio.wait_for(asyncio.gather(*(c.done.wait() for c in clients)), timeout)
    except TimeoutError:
        behind = sum(1 for c in clients if not c.done.is_set())
        raise SystemExit(f"{behind} clients had not seen the execution finish after {timeout:.0f}s") from None
    busy_cpu = cpu_seconds(web) - busy_cpu
    frames = sum(c.frames for c in clients) - frames_before
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(30)
    stop_lag.set()
    await lag_task
    await asyncio.gather(*tasks)

    @sync_to_async
    def table() -> tuple[list[int], dict[int, float], str]:
        rows = list(ExecutionEvent.objects.filter(execution_id=execution_id).order_by("id").values("id", "data"))
        stamps = {}
        for row in rows:
            lines = (row["data"] or {}).get("lines") or [] if isinstance(row["data"], dict) else []
            ticks = [float(line.split()[2]) for line in lines if line.startswith("tick ")]
            if ticks:
                stamps[row["id"]] = ticks[0]  # the oldest line the event carries
        return [row["id"] for row in rows], stamps, Execution.objects.get(pk=execution_id).state

    expected, stamps, state = await table()
    from_row, from_agent = latencies(clients, gate_at, stamps)
    live_events = sum(1 for event_id in stamps if event_id > caught_up)
    return {
        "execution_state": state,
        "events_in_table": len(expected),
        "live_events": live_events,
        "connect_seconds": round(connect_seconds, 2),
        "clients_closed_early": sum(1 for c in clients if c.error),
        "errors": [c.error for c in clients if c.error][:5],
        "delivery": delivery(clients, expected),
        "created_to_received": percentiles(from_row),
        "agent_stamp_to_received": percentiles(from_agent),
        "client_loop_lag": percentiles([lag * 1000 for lag in lags]),
        "web_cpu_idle_percent": round(idle_percent, 2),
        "web_cpu_seconds": round(busy_cpu, 3),
        "frames": frames,
        "web_cpu_us_per_frame": round(busy_cpu / frames * 1e6, 1) if frames else None,
    }


def rows_of(results: dict) -> list[dict]:
    m = results["measured"]
    lat, lost = m["created_to_received"], m["delivery"]
    rows = [
        {"what": f"event -> client latency p{p}", "value": lat[f"p{p}_ms"], "unit": "ms"} for p in ("50", "95", "99")
    ]
    rows[-1].update({"target": f"<= {TARGET_P99_MS:g}", "met": lat["p99_ms"] <= TARGET_P99_MS})
    rows.append({"what": "event -> client latency max", "value": lat["max_ms"], "unit": "ms"})
    for key in ("lost", "duplicated", "out_of_order"):
        rows.append({"what": f"events {key.replace('_', ' ')}", "value": lost[key], "unit": "events",
                     "target": "0", "met": lost[key] == 0})  # fmt: skip
    closed = m["clients_closed_early"]
    rows.append({"what": "sockets closed early", "value": closed, "unit": "clients", "target": "0", "met": not closed})
    rows.append({"what": "agent line -> client p99", "value": m["agent_stamp_to_received"].get("p99_ms"), "unit": "ms"})
    rows.append({"what": "web CPU per delivered frame", "value": m["web_cpu_us_per_frame"], "unit": "us"})
    rows.append({"what": "web CPU while watched, idle", "value": m["web_cpu_idle_percent"], "unit": "% of a core"})
    rows.append({"what": "clients' own loop lag p99", "value": m["client_loop_lag"].get("p99_ms"), "unit": "ms"})
    return rows


def report(results: dict) -> str:
    config = results["config"]
    lines = [
        f"Websocket fan-out: {config['clients']} clients, {config['events']} events every {config['interval']}s, "
        f"{config['database']} + {config['channel_layer']}, {results['machine']['cpus']} CPUs",
        "",
    ]
    for row in results["rows"]:
        target = f"   target {row['target']}  {'OK' if row['met'] else 'MISS'}" if "target" in row else ""
        lines.append(f"  {row['what']:<36}{row['value']!s:>10} {row['unit']}{target}")
    return "\n".join(lines)


def main() -> int:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="symphony-wsbench-"))
    log_dir = workdir / "logs"
    log_dir.mkdir()
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
                # Plain http on 127.0.0.1: no redirect to https, cookies that travel over http.
                "DJANGO_SECURE_SSL_REDIRECT": "0",
                "DJANGO_SECURE_COOKIES": "0",
                "SYMPHONY_VAR_DIR": str(workdir / "var"),
                "SYMPHONY_SQLITE_PATH": str(workdir / "symphony.sqlite3"),
                "SYMPHONY_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "SYMPHONY_WORKERS": "1",
                # Each line its own event: the default flush (0.25 s) would batch three lines into one.
                "SYMPHONY_PROGRESS_FLUSH_SECONDS": "0.01",
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
            env["SYMPHONY_Q_CLUSTER_NAME"] = f"symphony-wsbench-{uuid.uuid4().hex[:8]}"
            cleanup.callback(forget_cluster, args.redis_url, env["SYMPHONY_Q_CLUSTER_NAME"])
        os.environ.clear()
        os.environ.update(env)
        for command in (["migrate", "--noinput", "-v0"], ["symphony", "ensure-admin"]):
            subprocess.run([PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True)

        import django

        django.setup()
        from django.conf import settings
        from django.db import connection

        from executions.models import Execution
        from executions.services import execution_submit
        from routing.models import AgentConfig

        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        procs = [
            Process("web", [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "symphony.asgi:application"], env, log_dir),
            Process("worker", [PYTHON, "manage.py", "symphony", "worker"], env, log_dir),
            Process("dispatcher", [PYTHON, "manage.py", "symphony", "dispatcher"], env, log_dir),
        ]
        for proc in procs:
            cleanup.callback(proc.stop)

        def answered():
            import httpx

            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(base_url + "/accounts/login/", timeout=2, trust_env=False).status_code == 200
            return False

        wait_for(answered, timeout=60, what="daphne", interval=0.1, procs=procs)
        session = login(base_url)
        agent, _ = AgentConfig.objects.update_or_create(
            name="bench-ticker", defaults={"settings": {"path": "bench.ticker.ticker_agent"}}
        )
        gate = workdir / "gate"
        execution = execution_submit(
            agent=agent,
            input_data={"gate": str(gate), "count": args.events, "interval": args.interval},
            max_attempts=1,
            timeout=600,
        )
        wait_for(
            lambda: Execution.objects.filter(pk=execution.pk, state="RUNNING").exists(),
            timeout=60, what="the execution to run", procs=procs,
        )  # fmt: skip
        measured = asyncio.run(watch(args, workdir, procs, base_url, session, execution.pk))
        results = {
            "name": "websocket_fanout",
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
            "config": {
                "clients": args.clients,
                "events": args.events,
                "interval": args.interval,
                "database": connection.vendor,
                "channel_layer": "redis" if args.redis_url else "in-memory + relay",
                "relay": settings.SYMPHONY_EVENT_RELAY,
                "relay_interval": settings.SYMPHONY_RELAY_INTERVAL,
                "progress_flush_seconds": settings.SYMPHONY_PROGRESS_FLUSH_SECONDS,
                "environment": args.set,
                "quick": args.quick,
            },
            "measured": measured,
        }
        results["rows"] = rows_of(results)
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n")
        print(report(results))
        print(f"\nresults: {output}" + (f"\nlogs: {log_dir}" if args.keep else ""))
        connection.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
