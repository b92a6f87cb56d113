"""The TaskRunner: runs one claimed execution to exactly one recorded end.

A worker process runs many executions at once (``executions.slots``); an
``ExecutionRunner`` is one of them. It builds the agent and records the start,
starts the agent (``executions.agent_calls``), and while the agent runs it
tells its supervisor when it must be stopped: cancelled or reaped, the lease
about to pass, past the deadline, or the worker stopping. Whatever the agent
does (returns, raises, hangs, returns junk) the execution ends in exactly one
recorded state.

``ExecutionRunner(execution_id).run()`` claims and runs one execution in a
supervisor of its own: what tests and one-off callers use.
"""

import json
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from executions import shutdown
from executions.agent_calls import AgentCall, start_agent
from executions.claims import claim
from executions.context import ExecutionContext
from executions.errors import error_detail, exception_detail
from executions.lease import DatabaseUnavailable, Lease, with_reconnect
from executions.models import Execution
from executions.models import ExecutionState as S
from executions.preparation import Prepared, build_agent
from executions.progress import ProgressTracker
from executions.services import (
    execution_complete,
    execution_fail,
    execution_requeue,
    execution_start,
    execution_time_out,
)
from executions.state import FINISHED, TransitionError
from executions.storable import storable_json

logger = logging.getLogger(__name__)


class InvalidResult(Exception):
    """The agent returned something that cannot be stored as JSON."""

    retryable = False


@dataclass
class RunOutcome:
    state: str | None = None  # what this runner recorded; None if it did not own the end
    agent_left_running: bool = False
    # The agent is still running and its execution may soon be claimed again (lost to the
    # reaper, or its lease about to pass): the worker process must end now to stop it.
    exit_now: bool = False


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
    """One claimed execution, from PREPARING to its recorded end, under its own lease.

    Every database call made while the agent runs survives a database restart:
    progress and heartbeats (written by the supervisor for all its runners at
    once) are retried on the next tick, the end is retried until the database
    answers. If the lease cannot be renewed in time, the agent is stopped before
    the lease can end, so no other worker ever runs the execution at the same
    time as this one.
    """

    def __init__(self, execution_id: int | None = None, *, owner: str | None = None):
        self.execution_id = execution_id
        self.owner = owner or worker_id()
        self.future: Future | None = None
        self.stop: str | None = None
        self.cancel_until: float | None = None
        self.outcome: RunOutcome | None = None
        self.ours = True  # what the supervisor's last flush and heartbeat said
        self.end_retry_at: float | None = None  # recording the end failed: try again then
        self._at_once = False  # recording inside the supervisor's transaction: no retries (finish_in)
        self._taken = None  # the progress batch finish_in wrote, put back if its transaction rolls back
        self._end_by: float | None = None

    # One execution in a supervisor of its own ---------------------------------------

    def run(self) -> RunOutcome:
        """Claim ``execution_id`` if it is ready (due, its agent has a free slot) and run it."""
        execution = claim(owner=self.owner, execution_id=self.execution_id)
        if execution is None:
            return RunOutcome()
        return self.run_claimed(execution)

    def run_claimed(self, execution: Execution) -> RunOutcome:
        """Run an execution this worker claimed (it is PREPARING under our lease) to its end."""
        from executions.slots import SlotPool  # the pool supervises runners: imported here, not at the top

        return SlotPool(capacity=1).run_to_end(self, execution)

    # Steps the supervisor takes ------------------------------------------------------

    def begin(self, execution: Execution, *, on_first_output=None) -> bool:
        """Build the agent, record RUNNING and start it; False if it ended before it could run (``outcome``).

        A claim may have done the first two already (``prepare``), in its own transaction.
        """
        self.execution = execution
        self.execution_id = execution.pk
        self.lease = Lease(execution.pk, self.owner, taken_at=getattr(execution, "lease_taken_at", time.monotonic()))
        prepared: Prepared | None = getattr(execution, "prepared", None)
        if shutdown.stop_requested():
            self.outcome = RunOutcome(self._give_back(S.RUNNING if prepared and prepared.started else S.PREPARING))
            return False
        if prepared is None:
            prepared = build_agent(execution)
            if prepared.error is None:
                try:
                    self._record(lambda: execution_start(execution_id=self.execution_id, owner=self.owner), "start it")
                    prepared.started = True
                except (TransitionError, DatabaseUnavailable) as exc:
                    logger.warning("Execution %s not started: %s", self.execution_id, exc)
        if prepared.error is not None:
            self.outcome = RunOutcome(self._fail(prepared.error, prepared.traceback, S.PREPARING))
            return False
        if not prepared.started:
            self.outcome = RunOutcome()
            return False
        agent = prepared.agent
        self.started = time.monotonic()
        self.deadline = self.started + execution.timeout_seconds
        self.tracker = ProgressTracker(self.execution_id, owner=self.owner, on_first_output=on_first_output)
        self.ctx = ExecutionContext(execution, self.tracker, self.deadline)
        self.future = start_agent(agent, self.ctx)
        logger.info(
            "Execution %s started: agent %s, attempt %s",
            execution.pk,
            execution.agent.name,
            execution.attempt,
            extra={"execution_id": execution.pk, "agent": execution.agent.name, "attempt": execution.attempt},
        )
        return True

    def log_end(self) -> None:
        """The one INFO line of an execution's end (or of an attempt's, when it goes back to the queue)."""
        state = self.outcome.state if self.outcome else None
        if state is None:
            return  # not ours to end: whoever ended it (a cancel, the reaper) says so in its event
        execution = self.execution
        started = getattr(self, "started", None)
        duration = round(time.monotonic() - started, 3) if started is not None else 0.0
        logger.info(
            "Execution %s ended %s: agent %s, attempt %s, %.2fs",
            execution.pk,
            "requeued" if state == S.QUEUED else state,
            execution.agent.name,
            execution.attempt,
            duration,
            extra={
                "execution_id": execution.pk,
                "agent": execution.agent.name,
                "state": state,
                "attempt": execution.attempt,
                "duration_seconds": duration,
            },
        )

    @property
    def agent_done(self) -> bool:
        return self.future is not None and self.future.done()

    def next_due(self, grace_ends: float | None) -> float:
        """The next instant at which the supervisor may have something to do for this execution."""
        if self.end_retry_at is not None:
            return self.end_retry_at
        if self.agent_done:
            return 0.0  # now: its end is to be recorded
        if self.cancel_until is not None:
            return self.cancel_until
        due = min(self.deadline, self.lease.stop_by)
        return due if grace_ends is None else min(due, grace_ends)

    def check(self, now: float, *, ours: bool, grace_ends: float | None) -> None:
        """Decide whether the agent must stop, and if so cancel it (once) and give it time to answer."""
        if self.stop is not None or self.agent_done:
            return
        if not ours:
            self.stop = "lost"  # cancelled, or reaped after missed heartbeats: not ours to end
        elif now >= self.lease.stop_by:
            self.stop = "lease"  # the lease could not be renewed and may soon pass to another worker
        elif now >= self.deadline:
            self.stop = "timeout"
        elif grace_ends is not None and now >= grace_ends:
            self.stop = "stopping"
        if self.stop:
            self.ctx._cancel()
            stopping = self.stop == "stopping"
            allowed = shutdown.stop_cancel_grace() if stopping else settings.SYMPHONY_CANCEL_GRACE_SECONDS
            self.cancel_until = min(now + allowed, self.lease.safe_until)

    def ready_to_end(self, now: float) -> bool:
        return self.agent_done or (self.cancel_until is not None and now >= self.cancel_until)

    def finish(self, *, write_by: float | None = None) -> RunOutcome | None:
        """Record the end; None if the database did not answer by ``write_by`` and it must be tried again."""
        left_running = not self.agent_done
        if left_running and (self.stop == "lost" or time.monotonic() >= self.lease.safe_until):
            # Not ours any more, or no time left to write anything before someone else may claim it.
            self.outcome = RunOutcome(None, True, exit_now=not (self.stop == "lost" and self._ended_for_good()))
            return self.outcome
        # While the agent runs on, every write must land before the lease may end.
        own_until = self.lease.safe_until if left_running else self._end_until()
        until = own_until if write_by is None else min(own_until, write_by)
        try:
            self._record(self.tracker.flush, "save its progress", until=until)
        except TransitionError as exc:
            logger.warning("Execution %s: last progress not saved: %s", self.execution_id, exc)
        except DatabaseUnavailable as exc:
            if time.monotonic() < own_until:
                return None
            logger.warning("Execution %s: last progress not saved: %s", self.execution_id, exc)
        try:
            state = self._end(until=until, left_running=left_running)
        except DatabaseUnavailable as exc:
            if time.monotonic() < own_until:
                return None
            # The lease will pass and the dispatcher requeue it: this end is lost, the execution is not.
            logger.error("Execution %s: %s", self.execution_id, exc)
            state = None
        self.outcome = RunOutcome(state, left_running, exit_now=left_running and self.stop == "lease")
        return self.outcome

    def finish_in(self) -> RunOutcome:
        """Record the end of an agent that returned, inside the caller's transaction, with no retries.

        The supervisor records the ends of several executions in one transaction. Any
        database error is raised; the caller rolls back, calls ``unfinish`` and
        records each end on its own (``finish``).
        """
        assert self.agent_done
        self._at_once = True
        try:
            self._taken = self.tracker.take()
            if self._taken is not None:
                self.tracker.write(self._taken)
            state = self._end(until=0.0, left_running=False)
        finally:
            self._at_once = False
        self.outcome = RunOutcome(state)
        return self.outcome

    def unfinish(self) -> None:
        """The transaction of ``finish_in`` was rolled back: nothing of it was written."""
        if self._taken is not None:
            self.tracker.put_back(self._taken)
        self._taken = None
        self.outcome = None

    def _end_until(self) -> float:
        if self._end_by is None:
            self._end_by = time.monotonic() + settings.SYMPHONY_DATABASE_RETRY_SECONDS
        return self._end_by

    def _ended_for_good(self) -> bool:
        """Whether a lost execution is finished (cancelled, say), so nobody will run it again."""
        try:
            return Execution.objects.filter(pk=self.execution_id, state__in=FINISHED).exists()
        except Exception:  # noqa: BLE001 - unknown is treated as "may run again"
            return False

    # Recording the end --------------------------------------------------------------

    def _end(self, *, until: float, left_running: bool) -> str | None:
        stop, execution = self.stop, self.execution
        if stop == "lost":
            return None
        if stop == "stopping":
            return self._give_back(S.RUNNING, delay=_exit_margin() if left_running else 0, until=until)
        if stop == "lease":
            error = error_detail(
                kind="DatabaseUnavailable",
                message="The worker could not reach the database to renew its lease; the agent was stopped "
                "before another worker could take the execution over.",
                attempt=execution.attempt,
                agent=execution.agent.name,
                retryable=True,
            )
            return self._fail_with(error, S.RUNNING, until=until)
        if stop == "timeout":
            return self._time_out(until=until)
        call: AgentCall = self.future.result()
        if call.error is not None:
            return self._fail(call.error, call.traceback, S.RUNNING, until=until)
        try:
            result, replaced = to_json_result(call.value)
        except InvalidResult as exc:
            return self._fail(exc, "", S.RUNNING, until=until)
        if replaced:
            logger.warning("Execution %s: replaced %d unstorable characters in the result", execution.pk, replaced)
        return self._complete(result, until=until)

    def _record(self, write, what: str, *, until: float | None = None):
        if self._at_once:
            return write()
        until = until if until is not None else time.monotonic() + settings.SYMPHONY_DATABASE_RETRY_SECONDS
        return with_reconnect(write, until=until, what=f"{what} (execution {self.execution_id})")

    def _recorded(self, what: str, write, *, until: float | None = None) -> str | None:
        """The state ``write`` moved the execution to; None if it was no longer ours.

        ``DatabaseUnavailable`` is the caller's: it may try again later.
        """
        try:
            return self._record(write, what, until=until)
        except TransitionError as exc:
            logger.info("Execution %s: could not %s: %s", self.execution_id, what, exc)
        return None

    def _complete(self, result: Any, *, until: float | None) -> str | None:
        def write():
            execution_complete(execution_id=self.execution_id, owner=self.owner, result=result)
            return S.COMPLETED

        return self._recorded("record it COMPLETED", write, until=until)

    def _time_out(self, *, until: float | None) -> str | None:
        execution = self.execution
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

    def _give_back(self, from_state: str, *, delay: float = 0, until: float | None = None) -> str | None:
        """Back to the queue, attempt not counted: the worker is stopping, the agent did nothing wrong."""

        def write():
            execution_requeue(
                execution_id=self.execution_id,
                from_state=from_state,
                attempt=self.execution.attempt,
                reason="requeued: worker stopping",
                count_attempt=False,
                owner=self.owner,
                delay=delay,
            )
            return S.QUEUED

        return self._recorded_now("requeue it", write, until=until)

    def _fail(self, exc: BaseException, tb: str, from_state: str, *, until: float | None = None) -> str | None:
        execution = self.execution
        error = exception_detail(exc, tb, attempt=execution.attempt, agent=execution.agent.name)
        return self._fail_with(error, from_state, retry_after=getattr(exc, "retry_after", None), until=until)

    def _fail_with(self, error: dict, from_state: str, *, retry_after=None, until: float | None = None) -> str | None:
        execution = self.execution

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

        return self._recorded_now("record the failed attempt", write, until=until)

    def _recorded_now(self, what: str, write, *, until: float | None) -> str | None:
        """``_recorded`` for ends written before the agent ran: no supervisor retries those later."""
        if until is not None:
            return self._recorded(what, write, until=until)
        try:
            return self._recorded(what, write)
        except DatabaseUnavailable as exc:
            logger.error("Execution %s: %s", self.execution_id, exc)
            return None


def _exit_margin() -> float:
    """How long a requeued execution waits when this process must still end to stop its agent."""
    return max(2.0, settings.SYMPHONY_CANCEL_GRACE_SECONDS)
