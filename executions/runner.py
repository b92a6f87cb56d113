"""The TaskRunner: runs one execution inside a django-q2 worker.

The worker's thread claims the execution (a compare-and-set with a lease),
builds the agent, and runs it in a thread of its own while it supervises:
flushing coalesced progress, renewing the lease, noticing cancellation and the
deadline. Whatever the agent does (returns, raises, hangs, returns junk) the
execution ends in exactly one recorded state, and the worker moves on.
"""

import asyncio
import functools
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
from django.db import DatabaseError, connections
from django.utils.module_loading import import_string

from executions import shutdown
from executions.claims import claim
from executions.context import ExecutionContext
from executions.errors import error_detail, exception_detail
from executions.lease import (
    CONNECTION_ERRORS,
    DatabaseUnavailable,
    Lease,
    limit_lock_wait,
    reset_connection,
    with_reconnect,
)
from executions.models import Execution
from executions.models import ExecutionState as S
from executions.progress import ProgressTracker
from executions.services import (
    execution_complete,
    execution_fail,
    execution_requeue,
    execution_start,
    execution_time_out,
)
from executions.state import TransitionError
from executions.storable import storable_json
from routing.factory import AGENT_OVERRIDES_KEY, AgentFactory

logger = logging.getLogger(__name__)


class InvalidResult(Exception):
    """The agent returned something that cannot be stored as JSON."""

    retryable = False


@dataclass
class RunOutcome:
    state: str | None = None  # what this runner recorded; None if it did not own the end
    agent_left_running: bool = False


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def to_json_result(value: Any) -> tuple[Any, int]:
    """The value as it will be stored and how many characters had to be replaced in it,
    or InvalidResult with a reason a person can act on.

    Text the databases cannot hold (NUL, lone surrogates) is replaced, not refused:
    the agent's work is kept.
    """
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidResult(f"The agent's result is not JSON-serialisable: {exc}") from None
    limit = settings.SYMPHONY_MAX_RESULT_BYTES
    if len(text) > limit:  # ASCII: json.dumps escapes everything else
        raise InvalidResult(f"The agent's result is {len(text):,} bytes, over the {limit:,}-byte limit.")
    return storable_json(json.loads(text))


class ExecutionRunner:
    """Runs one claimed execution to exactly one recorded end.

    Every database call made while the agent runs survives a database restart:
    progress and heartbeats are retried on the next tick, the end is retried
    until the database answers. If the lease cannot be renewed in time, the
    agent is stopped before the lease can end, so no other worker ever runs the
    execution at the same time as this one.
    """

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
        self.lease = Lease(execution.pk, self.owner, taken_at=getattr(execution, "lease_taken_at", time.monotonic()))
        if shutdown.stop_requested():
            return RunOutcome(self._give_back(execution, S.PREPARING))
        try:
            agent = AgentFactory().build(execution.agent, overrides=execution.metadata.get(AGENT_OVERRIDES_KEY))
        except Exception as exc:
            return RunOutcome(self._fail(execution, exc, traceback.format_exc(), S.PREPARING))
        try:
            self._record(lambda: execution_start(execution_id=self.execution_id, owner=self.owner), "start it")
        except (TransitionError, DatabaseUnavailable) as exc:
            logger.warning("Execution %s not started: %s", self.execution_id, exc)
            return RunOutcome()
        return self._supervise(execution, agent)

    def _supervise(self, execution: Execution, agent) -> RunOutcome:
        started = time.monotonic()
        deadline = started + execution.timeout_seconds
        tracker = ProgressTracker(self.execution_id, owner=self.owner)
        ctx = ExecutionContext(execution, tracker, deadline)
        box: dict[str, Any] = {}
        thread = threading.Thread(
            target=_call_agent, args=(agent, ctx, box), name=f"agent-{self.execution_id}", daemon=True
        )
        thread.start()
        flush_every = settings.SYMPHONY_PROGRESS_FLUSH_SECONDS
        beat_every = settings.SYMPHONY_HEARTBEAT_SECONDS
        next_beat = started + beat_every
        grace_ends = None
        stop = None
        while True:
            now = time.monotonic()
            thread.join(max(0.0, min(flush_every, deadline - now, next_beat - now, self.lease.stop_by - now)))
            if not thread.is_alive():
                break
            now = time.monotonic()
            if shutdown.stop_requested() and grace_ends is None:
                grace_ends = now + settings.SYMPHONY_STOP_GRACE_SECONDS
            try:
                limit_lock_wait(self.lease.stop_by - now)
                ours = tracker.flush()
                if ours and now >= next_beat:
                    ours = self.lease.renew()
                    next_beat = now + beat_every
            except CONNECTION_ERRORS as exc:
                reset_connection()
                logger.warning("Execution %s: database unreachable while running (%s)", self.execution_id, exc)
                ours, next_beat = True, now + min(beat_every, 0.5)  # unknown: keep running on the lease clock
            except Exception:
                # Never let supervision end with the agent still running: the lease clock decides.
                logger.exception("Execution %s: progress or heartbeat failed", self.execution_id)
                ours = True
            now = time.monotonic()
            if not ours:
                stop = "lost"  # cancelled, or reaped after missed heartbeats: not ours to end
            elif now >= self.lease.stop_by:
                stop = "lease"  # the lease could not be renewed and may soon pass to another worker
            elif now >= deadline:
                stop = "timeout"
            elif grace_ends is not None and now >= grace_ends:
                stop = "stopping"
            if stop:
                ctx._cancel()
                allowed = shutdown.stop_cancel_grace() if stop == "stopping" else settings.SYMPHONY_CANCEL_GRACE_SECONDS
                thread.join(max(0.0, min(allowed, self.lease.safe_until - time.monotonic())))
                break
        left_running = thread.is_alive()
        try:
            limit_lock_wait(None)
        except DatabaseError:
            reset_connection()  # a new connection starts with the configured wait
        if left_running and (stop == "lost" or time.monotonic() >= self.lease.safe_until):
            # Not ours any more, or no time left to write anything before someone else may
            # claim it: the worker process must end now, taking the agent's thread with it.
            return RunOutcome(None, True)
        # While the agent's thread lives, every write must land before the lease may end.
        until = self.lease.safe_until if left_running else None
        try:
            self._record(tracker.flush, "save its progress", until=until)
        except (DatabaseUnavailable, DatabaseError) as exc:
            logger.warning("Execution %s: last progress not saved: %s", self.execution_id, exc)
        return RunOutcome(self._end(execution, stop, box, until=until), left_running)

    def _end(self, execution: Execution, stop: str | None, box: dict, *, until: float | None) -> str | None:
        if stop == "lost":
            return None
        if stop == "stopping":
            return self._give_back(execution, S.RUNNING, delay=_exit_margin() if until is not None else 0)
        if stop == "lease":
            error = error_detail(
                kind="DatabaseUnavailable",
                message="The worker could not reach the database to renew its lease; the agent was stopped "
                "before another worker could take the execution over.",
                attempt=execution.attempt,
                agent=execution.agent.name,
                retryable=True,
            )
            return self._fail_with(execution, error, S.RUNNING, until=until)
        if stop == "timeout":
            return self._time_out(execution, until=until)
        if "error" in box:
            return self._fail(execution, box["error"], box["traceback"], S.RUNNING)
        try:
            result, replaced = to_json_result(box.get("value"))
        except InvalidResult as exc:
            return self._fail(execution, exc, "", S.RUNNING)
        if replaced:
            logger.warning("Execution %s: replaced %d unstorable characters in the result", execution.pk, replaced)
        return self._complete(result, until=until)

    def _record(self, write, what: str, *, until: float | None = None):
        until = until if until is not None else time.monotonic() + settings.SYMPHONY_DATABASE_RETRY_SECONDS
        return with_reconnect(write, until=until, what=f"{what} (execution {self.execution_id})")

    def _recorded(self, what: str, write, *, until: float | None = None) -> str | None:
        """The state ``write`` moved the execution to; None if it was no longer ours or the database stayed away."""
        try:
            return self._record(write, what, until=until)
        except TransitionError as exc:
            logger.info("Execution %s: could not %s: %s", self.execution_id, what, exc)
        except DatabaseUnavailable as exc:
            # The lease will pass and the dispatcher requeue it: this end is lost, the execution is not.
            logger.error("Execution %s: %s", self.execution_id, exc)
        return None

    def _complete(self, result: Any, *, until: float | None) -> str | None:
        def write():
            execution_complete(execution_id=self.execution_id, owner=self.owner, result=result)
            return S.COMPLETED

        return self._recorded("record it COMPLETED", write, until=until)

    def _time_out(self, execution: Execution, *, until: float | None) -> str | None:
        error = error_detail(
            kind="TimedOut",
            message=f"The agent did not finish within {execution.timeout_seconds:g} seconds.",
            attempt=execution.attempt,
            agent=execution.agent.name,
            retryable=False,
        )

        def write():
            execution_time_out(execution_id=self.execution_id, owner=self.owner, error=error)
            return S.TIMED_OUT

        return self._recorded("record it TIMED_OUT", write, until=until)

    def _give_back(self, execution: Execution, from_state: str, *, delay: float = 0) -> str | None:
        """Back to the queue, attempt not counted: the worker is stopping, the agent did nothing wrong."""

        def write():
            execution_requeue(
                execution_id=self.execution_id,
                from_state=from_state,
                attempt=execution.attempt,
                reason="requeued: worker stopping",
                count_attempt=False,
                owner=self.owner,
                delay=delay,
            )
            return S.QUEUED

        return self._recorded("requeue it", write, until=self.lease.safe_until if delay else None)

    def _fail(self, execution: Execution, exc: BaseException, tb: str, from_state: str) -> str | None:
        error = exception_detail(exc, tb, attempt=execution.attempt, agent=execution.agent.name)
        return self._fail_with(execution, error, from_state, retry_after=getattr(exc, "retry_after", None))

    def _fail_with(
        self, execution: Execution, error: dict, from_state: str, *, retry_after=None, until: float | None = None
    ) -> str | None:
        def write():
            return execution_fail(
                execution_id=self.execution_id,
                from_state=from_state,
                error=error,
                attempt=execution.attempt,
                max_attempts=execution.max_attempts,
                owner=self.owner,
                retry_after=retry_after,
            )

        return self._recorded("record the failed attempt", write, until=until)


def _exit_margin() -> float:
    """How long a requeued execution waits when this process must still end to stop its agent."""
    return max(2.0, settings.SYMPHONY_CANCEL_GRACE_SECONDS)


def _call_agent(agent, ctx: ExecutionContext, box: dict) -> None:
    """Body of the agent's thread: run it, sync or async, and keep what it returned or raised."""
    try:
        _run_hooks("pre", ctx)
        if agent.is_async:
            box["value"] = asyncio.run(_run_async(agent.run(ctx.input, ctx), ctx))
        else:
            value = agent.run(ctx.input, ctx)
            if inspect.isawaitable(value):
                value = asyncio.run(_run_async(value, ctx))
            box["value"] = value
        _run_hooks("post", ctx, box["value"])
    except BaseException as exc:  # noqa: BLE001 - an agent may raise anything, SystemExit included
        box["error"], box["traceback"] = exc, traceback.format_exc()
    finally:
        connections.close_all()  # only this thread's connections


@functools.cache
def worker_hooks(which: str) -> tuple:
    """``SYMPHONY_AGENT_HOOKS[which]`` imported once per process: callables run around every agent call."""
    return tuple(import_string(path) for path in settings.SYMPHONY_AGENT_HOOKS.get(which, ()))


def _run_hooks(which: str, ctx: ExecutionContext, *result) -> None:
    """``pre(ctx)`` before the agent, ``post(ctx, result)`` after; a hook that raises is logged, not fatal."""
    for hook in worker_hooks(which):
        try:
            hook(ctx, *result)
        except Exception as exc:
            ctx.log(f"[symphony] {which}-execution hook {getattr(hook, '__qualname__', hook)} failed: "
                    f"{type(exc).__name__}: {exc}")  # fmt: skip


async def _run_async(awaitable, ctx: ExecutionContext):
    ctx._loop, ctx._task = asyncio.get_running_loop(), asyncio.current_task()
    if ctx.is_cancelled():
        raise asyncio.CancelledError
    return await awaitable
