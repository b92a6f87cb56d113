"""Process-level fixtures: a fresh database per test, and real daphne, worker cluster
and dispatcher processes started the way the Procfile starts them.

The embedded default (a SQLite file in ``tmp_path``, django-q2's ORM broker) is
used unless the pytest run has ``DATABASE_URL`` (then a uniquely named PostgreSQL
database is created for the test and dropped after it) and/or ``REDIS_URL``
(then the Redis broker and channel layer, under a cluster name unique to the
test, through ``SYMPHONY_Q_CLUSTER_NAME``).

Every process runs in its own process group (``start_new_session=True``) and is
torn down by signalling the group; its output goes to ``tmp_path/logs`` and is
attached to the report of a failing test.
"""

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.process.database import Database, postgres_database

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python") if (BIN / "python").exists() else sys.executable
DAPHNE = str(BIN / "daphne") if (BIN / "daphne").exists() else "daphne"

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "process-tests-" + uuid.uuid4().hex[:12]

# Short timers so crashes are noticed and recovered within seconds.
TIMERS = {
    "SYMPHONY_LEASE_SECONDS": "3",
    "SYMPHONY_HEARTBEAT_SECONDS": "0.5",
    "SYMPHONY_DISPATCH_INTERVAL": "0.5",
    "SYMPHONY_ROLLUP_SECONDS": "1",
    "SYMPHONY_WORKERS": "2",
}

STACK_KEY = pytest.StashKey["Stack"]()
T = TypeVar("T")


# Waiting ---------------------------------------------------------------------------


def wait_until(
    check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.05, alive: Callable[[], None] = None
) -> T:
    """Poll ``check`` until it returns something truthy; AssertionError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        if alive is not None:
            alive()
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - reported if the deadline passes
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"Timed out after {timeout:g}s waiting for {what}{detail}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# Processes -----------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen
    log_path: Path

    @property
    def pgid(self) -> int:
        return self.popen.pid  # start_new_session: the leader's pid is the group id

    def running(self) -> bool:
        return self.popen.poll() is None

    def output(self, limit: int = 30_000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            return f"<no output: {exc}>"
        return text if len(text) <= limit else "[... cut ...]\n" + text[-limit:]

    def group_alive(self) -> bool:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pgid, signum)

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the leader, wait, then SIGKILL the whole group (orphaned workers included).

        The leader alone is enough: a worker cluster forwards SIGTERM to its workers.
        """
        if self.running():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        # After the leader is reaped its pid stays reserved while any member of the group lives.
        deadline = time.monotonic() + 5
        while self.group_alive() and time.monotonic() < deadline:
            self.signal_group(signal.SIGKILL)
            time.sleep(0.05)


class Stack:
    """One test's Symphony install: environment, database, processes and their logs."""

    def __init__(self, tmp_path: Path, env: dict[str, str], db: Database):
        self.tmp_path = tmp_path
        self.env = env
        self.db = db
        self.log_dir = tmp_path / "logs"
        self.log_dir.mkdir(exist_ok=True)
        self.procs: list[Proc] = []
        self.base_url: str | None = None
        self.port: int | None = None
        self._names: dict[str, int] = {}

    # one-shot commands

    def manage(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """Run ``manage.py <args>`` to completion, recording its output in logs/manage.log."""
        started = time.monotonic()
        try:
            result = subprocess.run(
                [PYTHON, "manage.py", *args],
                cwd=ROOT,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            self._record(args, None, exc.stdout, exc.stderr, time.monotonic() - started)
            raise AssertionError(f"manage.py {' '.join(args)} did not finish within {timeout}s") from exc
        self._record(args, result.returncode, result.stdout, result.stderr, time.monotonic() - started)
        if check and result.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} exited {result.returncode}\n"
                f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
            )
        return result

    def _record(self, args, code, out, err, seconds) -> None:
        def text(value):
            return value.decode(errors="replace") if isinstance(value, bytes) else (value or "")

        with open(self.log_dir / "manage.log", "a") as log:
            log.write(f"$ manage.py {' '.join(args)}  -> exit {code} in {seconds:.2f}s\n")
            log.write(text(out))
            log.write(text(err))
            log.write("\n")

    def submit(self, agent: str, input_data: Any, *extra: str) -> int:
        result = self.manage("symphony", "submit", "--agent", agent, "--input", json.dumps(input_data), *extra)
        return int(result.stdout.strip().splitlines()[0])

    # long-running processes

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Proc:
        count = self._names[name] = self._names.get(name, 0) + 1
        label = name if count == 1 else f"{name}-{count}"
        log_path = self.log_dir / f"{label}.log"
        with open(log_path, "wb") as log:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env={**self.env, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        proc = Proc(label, popen, log_path)
        self.procs.append(proc)
        return proc

    def start_worker(self, **env: str) -> Proc:
        """A worker cluster (``SYMPHONY_WORKERS`` processes); ``env`` adds settings for it alone."""
        return self.start("worker", [PYTHON, "manage.py", "symphony", "worker"], env)

    def start_dispatcher(self) -> Proc:
        return self.start("dispatcher", [PYTHON, "manage.py", "symphony", "dispatcher"])

    def start_web(self, attempts: int = 3) -> str:
        """daphne on a free port; returns the base URL once the login page answers."""
        for attempt in range(1, attempts + 1):
            port = free_port()
            proc = self.start("web", [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "symphony.asgi:application"])
            base_url = f"http://127.0.0.1:{port}"

            def answered(base_url=base_url):
                with httpx.Client(trust_env=False, timeout=2) as client:
                    return client.get(base_url + "/accounts/login/").status_code

            try:
                wait_until(
                    answered,
                    timeout=30,
                    what=f"daphne answering on port {port}",
                    interval=0.1,
                    alive=lambda proc=proc: self.expect_running(proc),
                )
            except AssertionError:
                if attempt < attempts and not proc.running() and "Address already in use" in proc.output():
                    continue  # lost the race for the free port
                raise
            self.port, self.base_url = port, base_url
            return base_url
        raise AssertionError("unreachable")

    def expect_running(self, *procs: Proc) -> None:
        for proc in procs or self.procs:
            if not proc.running():
                raise AssertionError(f"{proc.name} exited with code {proc.popen.returncode}:\n{proc.output(5000)}")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop(grace=5)

    def outputs(self) -> list[tuple[str, str]]:
        sections = [(proc.name, proc.output()) for proc in self.procs]
        manage_log = self.log_dir / "manage.log"
        if manage_log.exists():
            sections.append(("manage.py commands", manage_log.read_text(errors="replace")[-30_000:]))
        return sections

    # HTTP

    def login(self) -> str:
        """Log in through Django's LoginView; returns the sessionid cookie."""
        assert self.base_url, "start_web() first"
        with httpx.Client(base_url=self.base_url, trust_env=False, timeout=10) as client:
            page = client.get("/accounts/login/")
            assert page.status_code == 200, f"GET /accounts/login/ answered {page.status_code}:\n{page.text[:3000]}"
            match = re.search(r'name="csrfmiddlewaretoken"\s+value="([^"]+)"', page.text)
            token = match.group(1) if match else client.cookies.get("csrftoken")
            assert token, "the login page set no CSRF token"
            response = client.post(
                "/accounts/login/",
                # next: land on "/" whatever LOGIN_REDIRECT_URL names; a wrong password answers 200
                data={
                    "username": ADMIN_USERNAME,
                    "password": ADMIN_PASSWORD,
                    "csrfmiddlewaretoken": token,
                    "next": "/",
                },
                headers={"Referer": self.base_url + "/accounts/login/"},
            )
            assert response.status_code == 302, (
                f"login answered {response.status_code}, not a redirect:\n{response.text[:3000]}"
            )
            session = client.cookies.get("sessionid")
            assert session, "logging in set no sessionid cookie"
            return session


# Fixtures ------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing process test carries its processes' output in its report."""
    outcome = yield
    report = outcome.get_result()
    stack = item.stash.get(STACK_KEY, None)
    if stack is not None and report.failed:
        for name, text in stack.outputs():
            report.sections.append((f"process output: {name}", text))


def _base_env(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SYMPHONY_", "DJANGO_", "DATABASE_", "PYTEST_")) and key != "REDIS_URL"
    }
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "symphony.settings",
            "DJANGO_DEBUG": "1",
            # fixed, so no two processes race to generate var/secret_key (django-q2 signs messages with it)
            "DJANGO_SECRET_KEY": "process-tests-" + uuid.uuid4().hex,
            "SYMPHONY_VAR_DIR": str(var_dir),
            "SYMPHONY_SQLITE_PATH": str(tmp_path / "symphony.sqlite3"),
            "SYMPHONY_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
            **TIMERS,
        }
    )
    return env


@pytest.fixture
def symphony(request, tmp_path):
    """A migrated, fresh install with the demo agents and an admin; start processes with its methods."""
    env = _base_env(tmp_path)
    redis_url = os.environ.get("REDIS_URL")
    cluster = f"symphony-proc-{uuid.uuid4().hex[:10]}"
    if redis_url:
        env["REDIS_URL"] = redis_url
        env["SYMPHONY_Q_CLUSTER_NAME"] = cluster
    with contextlib.ExitStack() as cleanup:
        if os.environ.get("DATABASE_URL"):
            url = cleanup.enter_context(postgres_database(os.environ["DATABASE_URL"]))
            env["DATABASE_URL"] = url
            db = Database(url=url)
        else:
            db = Database(sqlite_path=Path(env["SYMPHONY_SQLITE_PATH"]))
        cleanup.callback(db.close)
        if redis_url:
            cleanup.callback(_forget_cluster, redis_url, cluster)
        stack = Stack(tmp_path, env, db)
        request.node.stash[STACK_KEY] = stack
        cleanup.callback(stack.stop_all)  # runs before the database is dropped
        stack.manage("migrate", "--noinput")
        stack.manage("symphony", "load-demo")
        stack.manage("symphony", "ensure-admin")
        yield stack


def _forget_cluster(redis_url: str, cluster: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=5)
    try:
        keys = list(client.scan_iter(match=f"django_q:{cluster}:*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
