"""A fresh Symphony install for one benchmark, and the processes that run it.

Every bench builds its own: a temp dir, a new SQLite file or a new PostgreSQL
database (``symphony_bench_*``, dropped at the end), ``migrate``, then
``manage.py symphony worker`` clusters and a dispatcher started as separate
processes, as the Procfile starts them. The bench process plays the web
process: Django is set up in it against the same database.
"""

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
PYTHON = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
STAGING = f"bench-staging-{uuid.uuid4().hex[:8]}"  # holds a burst until it is released at once


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


def forget_cluster(redis_url: str, cluster: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"django_q:{cluster}:*")) + list(client.scan_iter(match=f"django_q:{STAGING}:*"))
    if keys:
        client.delete(*keys)
    client.close()


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

    def pids(self) -> list[int]:
        """The leader and every process under it (django-q2 may have replaced a worker since last time)."""
        import psutil

        try:
            leader = psutil.Process(self.popen.pid)
            return [leader.pid, *(child.pid for child in leader.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def rss_bytes(self) -> int:
        """Resident memory summed over the leader and its descendants."""
        import psutil

        total = 0
        for pid in self.pids():
            with contextlib.suppress(psutil.NoSuchProcess):
                total += psutil.Process(pid).memory_info().rss
        return total

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


def environment(workdir: Path, *, workers: int | None, log_level: str = "WARNING", sets=()) -> dict:
    """The environment of every process: this one's, less Symphony's and Django's own, plus a fresh install's.

    ``workers=None`` leaves ``SYMPHONY_WORKERS`` to its default.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYMPHONY_", "DJANGO_", "DATABASE_"))}
    env.pop("REDIS_URL", None)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "symphony.settings",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "DJANGO_DEBUG": "0",
            "SYMPHONY_VAR_DIR": str(workdir / "var"),
            "SYMPHONY_SQLITE_PATH": str(workdir / "symphony.sqlite3"),
            "SYMPHONY_LOG_LEVEL": log_level,
            "PYTHONUNBUFFERED": "1",
        }
    )
    if workers is not None:
        env["SYMPHONY_WORKERS"] = str(workers)
    for item in sets:
        name, _, value = item.partition("=")
        env[name] = value
    return env


def _stop(signum, frame):
    raise SystemExit(f"stopped by signal {signum}")  # so the cleanup stops the processes the bench started


class Install:
    """``with Install(...) as install:`` a migrated database, Django set up here, processes stopped at the end."""

    def __init__(self, *, database_url="", redis_url="", workers: int | None = 2, log_level="WARNING", sets=(),
                 keep=False, prefix="symphony-bench-"):  # fmt: skip
        self.database_url, self.redis_url, self.keep = database_url, redis_url, keep
        self.workers, self.log_level, self.sets, self.prefix = workers, log_level, list(sets), prefix
        self.procs: list[Process] = []

    def __enter__(self) -> "Install":
        signal.signal(signal.SIGTERM, _stop)
        self._cleanup = contextlib.ExitStack().__enter__()
        try:
            self._setup()
        except BaseException:
            self._cleanup.close()
            raise
        return self

    def _setup(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.log_dir = self.workdir / "logs"
        self.log_dir.mkdir()
        if not self.keep:
            self._cleanup.callback(shutil.rmtree, self.workdir, ignore_errors=True)
        self.env = environment(self.workdir, workers=self.workers, log_level=self.log_level, sets=self.sets)
        if self.database_url:
            self.env["DATABASE_URL"] = self._cleanup.enter_context(fresh_postgres(self.database_url))
        if self.redis_url:
            self.env["REDIS_URL"] = self.redis_url
            self.env["SYMPHONY_Q_CLUSTER_NAME"] = f"symphony-bench-{uuid.uuid4().hex[:8]}"
            self._cleanup.callback(forget_cluster, self.redis_url, self.env["SYMPHONY_Q_CLUSTER_NAME"])
        os.environ.clear()
        os.environ.update(self.env)
        subprocess.run([PYTHON, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=self.env, check=True)
        import django

        django.setup()

    def __exit__(self, *exc_info) -> None:
        from django.db import connection

        connection.close()
        self._cleanup.close()
        if self.keep:
            print(f"logs: {self.log_dir}", file=sys.stderr)

    def start(self, name: str, argv: list[str], **extra_env: str) -> Process:
        proc = Process(name, [PYTHON, "manage.py", *argv], {**self.env, **extra_env}, self.log_dir)
        self.procs.append(proc)
        self._cleanup.callback(proc.stop)
        return proc

    def start_worker(self, name: str = "worker", **extra_env: str) -> Process:
        return self.start(name, ["symphony", "worker"], **extra_env)

    def start_dispatcher(self) -> Process:
        return self.start("dispatcher", ["symphony", "dispatcher"])


# Bursts ---------------------------------------------------------------------------------


class Staging:
    """A burst prepared where the cluster cannot see it, then made visible in one step.

    Messages go to a staging queue; the release is one ``UPDATE`` of the ``OrmQ``
    key with the ORM broker, one ``RENAME`` of the list with Redis. For Symphony
    the messages are its wake-ups (a handful: workers claim from the execution
    table), and the dispatcher, which would wake them for work left waiting, is
    paused with SIGSTOP until the release.
    """

    def __init__(self):
        from django.conf import settings
        from django_q.brokers import get_broker
        from django_q.conf import Conf

        self.redis = "redis" in settings.Q_CLUSTER
        self.cluster_name = Conf.CLUSTER_NAME
        self.broker = get_broker()  # one reused broker (async_task would build one per call)
        self.staging = get_broker(STAGING)

    def queued(self, key: str | None = None) -> int:
        """Messages not yet acknowledged (ORM: rows, locked or not; Redis: list length)."""
        if self.redis:
            return self.broker.connection.llen(self.staging.list_key if key == STAGING else self.broker.list_key)
        from django_q.models import OrmQ

        return OrmQ.objects.filter(key=key or self.cluster_name).count()

    def release(self) -> float:
        """Make the staged burst visible to the cluster in one step; returns when that happened."""
        t0 = time.time()
        if self.redis:
            self.broker.connection.rename(self.staging.list_key, self.broker.list_key)
        else:
            from django_q.models import OrmQ

            OrmQ.objects.filter(key=STAGING).update(key=self.cluster_name)
        return t0

    def executions(self, *, agent, n: int, dispatcher: Process, input_data=None) -> tuple[list[int], float, float]:
        """Submit N executions held back, then release them: (ids, seconds the submits took, release time)."""
        from django.db import transaction

        from executions import wakeups
        from executions.services import execution_submit

        os.kill(dispatcher.popen.pid, signal.SIGSTOP)
        wakeups._broker, wakeups._broker_pid = self.staging, os.getpid()  # submit into the staging queue
        try:
            started = time.perf_counter()
            # One transaction: a worker still holding an earlier wake-up (django-q2 prefetches them)
            # must not find the burst ready before the release, one execution at a time.
            with transaction.atomic():
                ids = [execution_submit(agent=agent, input_data=input_data or {}, max_attempts=1).pk for _ in range(n)]
            submit_s = time.perf_counter() - started
            wakeups._broker = None
            t0 = self.release()
        finally:
            wakeups._broker = None
            os.kill(dispatcher.popen.pid, signal.SIGCONT)
        return ids, submit_s, t0


def wait_completed(ids: list[int], *, procs, timeout: float, interval: float = 0.05) -> float:
    """Wait until every execution in ids is COMPLETED (any other end fails the bench); the last COMPLETED time."""
    from executions.models import Execution, ExecutionEvent

    low, high, n = min(ids), max(ids), len(ids)
    batch = Execution.objects.filter(pk__gte=low, pk__lte=high)

    def finished():
        if batch.exclude(state__in=["QUEUED", "PREPARING", "RUNNING", "COMPLETED"]).exists():
            failed = list(batch.exclude(state__in=["QUEUED", "PREPARING", "RUNNING", "COMPLETED"])[:5].values())
            raise SystemExit(f"executions ended otherwise than COMPLETED: {failed}")
        return batch.filter(state="COMPLETED").count() == n

    wait_for(finished, timeout=timeout, what=f"{n} executions", interval=interval, procs=procs)
    last = (
        ExecutionEvent.objects.filter(execution_id__gte=low, execution_id__lte=high, to_state="COMPLETED")
        .order_by("-created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    return last.timestamp()
