"""The TaskRunner: runs one execution inside a django-q2 worker.

The worker's thread claims the execution (a compare-and-set with a lease),
builds the agent, and runs it in a thread of its own while it supervises:
flushing coalesced progress, renewing the lease, noticing cancellation and the
deadline. Whatever the agent does (returns, raises, hangs, returns junk) the
execution ends in exactly one recorded state, and the worker moves on.
"""

import asyncio
import inspect
import json
import logging
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils import timezone

from executions.claims import claim
from executions.models import Execution
from executions.models import ExecutionState as S
from executions.progress import ProgressTracker
from executions.services import execution_requeue
from executions.state import TransitionError, transition
from routing.factory import AgentFactory

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
MAX_TRACEBACK_CHARS = 20000


class InvalidResult(Exception):
    """The agent returned something that cannot be stored as JSON."""

    retryable = False


class ExecutionContext:
    """What an agent receives beside its input: progress, log, cancellation and metadata."""

    def __init__(self, execution: Execution, tracker: ProgressTracker, deadline: float):
        self.execution_id = execution.pk
        self.task_id = execution.task_id
        self.task_name = execution.task.name
        self.agent_name = execution.agent.name
        self.attempt = execution.attempt
        self.max_attempts = execution.max_attempts
        self.metadata = dict(execution.metadata)
        self.input = execution.task.input_data
        self.deadline = deadline
        self._tracker = tracker
        self._cancelled = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None

    def progress(self, percent: float | None = None, step: str | None = None) -> None:
        """Report how far along the agent is (0-100) and, optionally, the step it is on."""
        self._tracker.report(percent, step)

    def log(self, text: str) -> None:
        """Append a line to the execution's live log."""
        self._tracker.log(text)

    def stream(self, text: str) -> None:
        """Append a fragment of streamed output (model tokens) to the live log."""
        self._tracker.stream(text)

    def record_usage(self, **counts: float) -> None:
        """Add to the resources this execution used, e.g. ``prompt_tokens=12, completion_tokens=40``."""
        self._tracker.record_usage(**counts)

    def is_cancelled(self) -> bool:
        """True once the execution was cancelled, timed out or lost: stop working."""
        return self._cancelled.is_set()

    def sleep(self, seconds: float) -> bool:
        """Sleep that wakes early on cancellation; returns True if cancelled."""
        return self._cancelled.wait(seconds)

    @property
    def remaining(self) -> float:
        """Seconds left before the execution's deadline."""
        return max(0.0, self.deadline - time.monotonic())

    def _cancel(self) -> None:
        self._cancelled.set()
        if self._loop is not None and self._task is not None:
            self._loop.call_soon_threadsafe(self._task.cancel)


@dataclass
class RunOutcome:
    state: str | None = None  # what this runner recorded; None if it did not own the end
    agent_left_running: bool = False


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def describe_error(exc: BaseException, tb: str, *, attempt: int, agent: str) -> dict:
    try:
        message = str(exc)
    except Exception:
        message = f"<unprintable {type(exc).__name__}>"
    kind = type(exc)
    qualified = kind.__name__ if kind.__module__ in ("builtins", "__main__") else f"{kind.__module__}.{kind.__name__}"
    return {
        "type": qualified,
        "message": message[:MAX_MESSAGE_CHARS],
        "traceback": tb[-MAX_TRACEBACK_CHARS:],
        "attempt": attempt,
        "agent": agent,
        "retryable": bool(getattr(exc, "retryable", True)),
    }


def to_json_result(value: Any) -> Any:
    """The value as it will be stored, or InvalidResult with a reason a person can act on."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidResult(f"The agent's result is not JSON-serialisable: {exc}") from None
    limit = settings.SYMPHONY_MAX_RESULT_BYTES
    if len(text.encode()) > limit:
        raise InvalidResult(f"The agent's result is {len(text.encode()):,} bytes, over the {limit:,}-byte limit.")
    return json.loads(text)


class ExecutionRunner:
    """Runs one claimed execution to exactly one recorded end."""

    def __init__(self, execution_id: int | None = None, *, owner: str | None = None):
        self.execution_id = execution_id
        self.owner = owner or worker_id()

    def run(self) -> RunOutcome:
        """Claim ``execution_id`` if it is ready (due, its agent has a free slot) and run it."""
        execution = claim(owner=self.owner, execution_id=self.execution_id)
        if execution is None:
            return RunOutcome()
        return self.run_claimed(execution)

    def run_claimed(self, execution: Execution) -> RunOutcome:
        """Run an execution this worker claimed (it is PREPARING under our lease)."""
        self.execution_id = execution.pk
        try:
            agent = AgentFactory().build(execution.agent)
        except Exception as exc:
            return RunOutcome(self._fail_or_retry(execution, exc, traceback.format_exc(), S.PREPARING))
        try:
            transition(
                self.execution_id, S.RUNNING, expected=[S.PREPARING], fields={"started_at": timezone.now()}
            )
        except TransitionError:
            return RunOutcome()
        return self._supervise(execution, agent)

    def _renew_lease(self) -> bool:
        lease = timezone.timedelta(seconds=settings.SYMPHONY_LEASE_SECONDS)
        return bool(
            Execution.objects.filter(pk=self.execution_id, state=S.RUNNING, lease_owner=self.owner).update(
                lease_expires_at=timezone.now() + lease
            )
        )

    def _supervise(self, execution: Execution, agent) -> RunOutcome:
        started = time.monotonic()
        deadline = started + execution.timeout_seconds
        tracker = ProgressTracker(self.execution_id)
        ctx = ExecutionContext(execution, tracker, deadline)
        box: dict[str, Any] = {}
        thread = threading.Thread(
            target=_call_agent, args=(agent, ctx, box), name=f"agent-{self.execution_id}", daemon=True
        )
        thread.start()
        flush_every = settings.SYMPHONY_PROGRESS_FLUSH_SECONDS
        beat_every = settings.SYMPHONY_HEARTBEAT_SECONDS
        next_beat = started + beat_every
        stop = None
        while True:
            now = time.monotonic()
            thread.join(max(0.0, min(flush_every, deadline - now, next_beat - now)))
            if not thread.is_alive():
                break
            now = time.monotonic()
            still_running = tracker.flush()
            if now >= next_beat:
                still_running = still_running and self._renew_lease()
                next_beat = now + beat_every
            if not still_running:
                stop = "lost"  # cancelled, or reaped after a missed heartbeat: not ours to end
            elif now >= deadline:
                stop = "timeout"
            if stop:
                ctx._cancel()
                thread.join(settings.SYMPHONY_CANCEL_GRACE_SECONDS)
                break
        left_running = thread.is_alive()
        tracker.flush()
        if stop == "lost":
            return RunOutcome(None, left_running)
        if stop == "timeout":
            return RunOutcome(self._time_out(execution), left_running)
        if "error" in box:
            return RunOutcome(self._fail_or_retry(execution, box["error"], box["traceback"], S.RUNNING))
        try:
            result = to_json_result(box.get("value"))
        except InvalidResult as exc:
            return RunOutcome(self._fail_or_retry(execution, exc, "", S.RUNNING))
        return RunOutcome(self._end(S.COMPLETED, fields={"result": result, "progress": 100.0}))

    def _end(self, state: str, *, fields: dict, data: dict | None = None, from_state: str = S.RUNNING) -> str | None:
        try:
            transition(
                self.execution_id,
                state,
                expected=[from_state],
                fields={**fields, "lease_owner": "", "lease_expires_at": None},
                data=data,
            )
        except TransitionError as exc:
            logger.info("Execution %s not recorded as %s: %s", self.execution_id, state, exc)
            return None
        return state

    def _time_out(self, execution: Execution) -> str | None:
        error = {
            "type": "TimedOut",
            "message": f"The agent did not finish within {execution.timeout_seconds:g} seconds.",
            "traceback": "",
            "attempt": execution.attempt,
            "agent": execution.agent.name,
            "retryable": False,
        }
        return self._end(S.TIMED_OUT, fields={"error": error}, data={"error": error})

    def _fail_or_retry(self, execution: Execution, exc: BaseException, tb: str, from_state: str) -> str | None:
        error = describe_error(exc, tb, attempt=execution.attempt, agent=execution.agent.name)
        if error["retryable"] and execution.attempt < execution.max_attempts:
            delay = settings.SYMPHONY_RETRY_BACKOFF * 2 ** (execution.attempt - 1)
            delay = max(delay, getattr(exc, "retry_after", None) or 0)  # a rate limit says how long to wait
            try:
                execution_requeue(
                    execution_id=self.execution_id,
                    from_state=from_state,
                    attempt=execution.attempt,
                    reason=f"attempt {execution.attempt} failed; retrying in {delay:g}s",
                    error=error,
                    delay=delay,
                )
            except TransitionError:
                return None
            return S.QUEUED
        return self._end(S.FAILED, fields={"error": error}, data={"error": error}, from_state=from_state)


def _call_agent(agent, ctx: ExecutionContext, box: dict) -> None:
    """Body of the agent's thread: run it, sync or async, and keep what it returned or raised."""
    try:
        if agent.is_async:
            box["value"] = asyncio.run(_run_async(agent.run(ctx.input, ctx), ctx))
        else:
            value = agent.run(ctx.input, ctx)
            if inspect.isawaitable(value):
                value = asyncio.run(_run_async(value, ctx))
            box["value"] = value
    except BaseException as exc:  # noqa: BLE001 - an agent may raise anything, SystemExit included
        box["error"], box["traceback"] = exc, traceback.format_exc()
    finally:
        connections.close_all()  # only this thread's connections


async def _run_async(awaitable, ctx: ExecutionContext):
    ctx._loop, ctx._task = asyncio.get_running_loop(), asyncio.current_task()
    if ctx.is_cancelled():
        raise asyncio.CancelledError
    return await awaitable
