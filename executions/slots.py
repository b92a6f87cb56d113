"""A worker process's slots: many executions at once under one supervisor.

A woken django-q2 worker drains: it claims ready executions, a few per
transaction, as long as it has free slots (``SYMPHONY_SLOTS``), starts each
agent (``executions.agent_calls``), and supervises them all from this thread:

- every ``SYMPHONY_PROGRESS_FLUSH_SECONDS`` one transaction writes the
  coalesced progress of every running execution, and at each heartbeat renews
  all their leases in one statement;
- each execution keeps its own deadline, lease clock and cancel: a runner
  (``executions.runner``) says when its agent must stop, and its end is
  recorded as soon as the agent returns (or has had its time to answer a cancel);
- recording an end while the database is away is retried without letting the
  other executions' lease clocks run out: such a write gives up in time for
  the earliest of them and is tried again on a later tick.

A worker claims for at most ``SYMPHONY_DRAIN_SECONDS``; it then runs what it
holds to the end and hands itself back to django-q2, waking another worker if
work remains, so recycling and shutdown stay prompt. While it drains a backlog
it wakes one more idle worker whenever no wake-up is waiting, so a burst
spreads over the cluster (and over every cluster).

An agent that ignores its cancel cannot wedge the worker: once its execution is
recorded the worker claims nothing more, lets the others finish within the stop
grace (then puts them back, attempts not counted) and ends its process, which
django-q2 replaces. If that agent's execution may be claimed again before then
(lost to the reaper, or its lease about to pass), the process ends at once and
the dispatcher requeues what it held.
"""

import itertools
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from executions import shutdown, wakeups
from executions.claims import claim_many, has_ready_work
from executions.lease import CONNECTION_ERRORS, lock_wait_until, renew_leases, reset_connection
from executions.models import Execution
from executions.preparation import prepare
from executions.runner import ExecutionRunner, RunOutcome

logger = logging.getLogger(__name__)

# At most this many executions are claimed in one transaction (each claim checks its limits).
CLAIM_BATCH = 10
# How often a draining worker may look for idle workers to wake (seconds).
SPREAD_EVERY = 0.05
# A failed attempt to record an end is tried again this much later (seconds).
END_RETRY_SECONDS = 0.5


@dataclass
class DrainResult:
    ran: int = 0
    budget_spent: bool = False


class SlotPool:
    """Runs up to ``capacity`` executions at once in this process, each to exactly one recorded end."""

    def __init__(self, *, capacity: int | None = None, worker: bool = False):
        self.capacity = max(1, capacity or settings.SYMPHONY_SLOTS)
        # A worker ends its process when an agent will not stop; a one-off caller is only told.
        self.worker = worker
        # Lease owners are unique per claim: host, process, this pool, then a counter.
        self._owner_base = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self._numbers = itertools.count(1)
        self.runners: list[ExecutionRunner] = []
        self.stopping_since: float | None = None
        self.recycle_reason: str | None = None
        # The first write one interval in: agents just started have reported nothing yet.
        self._next_flush = time.monotonic() + settings.SYMPHONY_PROGRESS_FLUSH_SECONDS
        self._next_beat = 0.0
        self._last_spread = 0.0
        # Done when an agent streamed its first output: wakes the supervisor to write it at once.
        self._poke: futures.Future = futures.Future()

    def owners(self) -> Iterator[str]:
        while True:
            yield f"{self._owner_base}:{next(self._numbers)}"

    # Entry points -------------------------------------------------------------------

    def drain(self, *, budget: float) -> DrainResult:
        """Claim and run ready executions for ``budget`` seconds, then run what is held to its end."""
        try:
            return self._drain(budget)
        except BaseException:
            if self.worker and any(not runner.agent_done for runner in self.runners):
                # Unsupervised agents would outlive their leases and run again elsewhere: end them.
                logger.exception("Worker %s: supervision failed with agents running; ending the process", os.getpid())
                os._exit(1)
            raise

    def _drain(self, budget: float) -> DrainResult:
        result = DrainResult()
        started = time.monotonic()
        claiming, next_claim = True, started
        while True:
            now = time.monotonic()
            if claiming and (self._stopping() or now - started >= budget):
                claiming = False
                if not self._stopping():
                    result.budget_spent = True
                    with lock_wait_until(self._write_by()):
                        _wake(lambda: has_ready_work() and wakeups.wake_workers(force=True))
            free = self.capacity - len(self.runners)
            more = False
            if claiming and free > 0 and (now >= next_claim or not self.runners):
                claimed = self._claim(free)
                if claimed is None:
                    claiming = False  # the database is away: the dispatcher wakes a worker later
                    claimed = []
                for execution in claimed:
                    self._adopt(ExecutionRunner(owner=execution.lease_owner), execution)
                    result.ran += 1
                more = len(claimed) == min(free, CLAIM_BATCH)
                # Nothing more ready: look again at the next tick, or as soon as a slot frees.
                next_claim = now if claimed else now + settings.SYMPHONY_PROGRESS_FLUSH_SECONDS
                if claimed:
                    self._spread()
                elif not self.runners:
                    break  # idle
            if not self.runners:
                if not claiming:
                    break
                continue
            ended = self._supervise(wait=0 if more else None)
            if ended:
                next_claim = min(next_claim, time.monotonic())
        if self.recycle_reason and self.worker:
            logger.error("Worker %s ends to stop an agent: %s", os.getpid(), self.recycle_reason)
            os._exit(1)
        return result

    def run_to_end(self, runner: ExecutionRunner, execution: Execution) -> RunOutcome:
        """Run one claimed execution (PREPARING under ``runner``'s lease) to its recorded end."""
        self._adopt(runner, execution)
        while runner in self.runners:
            self._supervise()
        return runner.outcome

    # Supervision --------------------------------------------------------------------

    def _adopt(self, runner: ExecutionRunner, execution: Execution) -> None:
        runner.ours = True
        try:
            started = runner.begin(execution, on_first_output=self._wake_up)
        except Exception:
            # Not started: it stays under its lease until the dispatcher requeues it.
            logger.exception("Execution %s could not be started", execution.pk)
            return
        if started:
            self.runners.append(runner)
        else:
            runner.log_end()  # failed before its agent could run

    def _wake_up(self) -> None:
        """From an agent's thread: write what it streamed now, not at the next tick."""
        poke = self._poke
        if not poke.done():
            try:
                poke.set_result(None)
            except futures.InvalidStateError:
                pass  # another agent woke it first

    def _stopping(self) -> bool:
        return shutdown.stop_requested() or self.recycle_reason is not None

    @property
    def _grace_ends(self) -> float | None:
        if self.stopping_since is None:
            return None
        return self.stopping_since + settings.SYMPHONY_STOP_GRACE_SECONDS

    def _supervise(self, *, wait: float | None = None) -> int:
        """Wait for an agent to return or the next thing to do, do it; how many executions ended."""
        now = time.monotonic()
        due = min([self._next_flush, *(runner.next_due(self._grace_ends) for runner in self.runners)])
        timeout = max(0.0, due - now if wait is None else min(wait, due - now))
        running = [runner.future for runner in self.runners if not runner.agent_done]
        if timeout > 0 and running:
            futures.wait([*running, self._poke], timeout=timeout, return_when=futures.FIRST_COMPLETED)
        elif timeout > 0:
            time.sleep(timeout)  # only ends to try again later
        now = time.monotonic()
        if self._poke.done():
            # Replaced before the write: output streamed from now on wakes the next wait.
            self._poke = futures.Future()
            self._next_flush = now
        if self.stopping_since is None and self._stopping():
            self.stopping_since = now
        if now >= self._next_flush:
            self._write_progress(now)
        for runner in self.runners:
            runner.check(now, ours=runner.ours, grace_ends=self._grace_ends)
        ready = [
            runner
            for runner in self.runners
            if runner.ready_to_end(now) and (runner.end_retry_at is None or now >= runner.end_retry_at)
        ]
        ended = self._finish_together(ready)
        for runner in ready:
            if runner.outcome is None:
                outcome = self._finish(runner)
                if outcome is None:
                    runner.end_retry_at = time.monotonic() + END_RETRY_SECONDS
                    continue
                ended.append(runner)
        for runner in ended:
            self.runners.remove(runner)
            self._ended(runner, runner.outcome)
        return len(ended)

    def _finish_together(self, ready: list[ExecutionRunner]) -> list[ExecutionRunner]:
        """Record the ends of agents that returned in one transaction: one commit for many ends.

        On any error nothing of it stays and each end is recorded on its own, with retries.
        """
        together = [runner for runner in ready if runner.agent_done and runner.end_retry_at is None]
        if len(together) < 2:
            return []
        try:
            with lock_wait_until(self._write_by()), transaction.atomic():
                for runner in together:
                    runner.finish_in()
        except Exception as exc:
            if isinstance(exc, CONNECTION_ERRORS):
                reset_connection()
            logger.warning("Recording %d ends together failed (%s); recording each on its own", len(together), exc)
            for runner in together:
                runner.unfinish()
            return []
        return together

    def _finish(self, runner: ExecutionRunner) -> RunOutcome | None:
        write_by = self._write_by(runner)
        try:
            with lock_wait_until(write_by):
                return runner.finish(write_by=write_by)
        except Exception:
            # An end the database refuses for good: the lease passes and the dispatcher decides.
            logger.exception("Execution %s: its end could not be recorded", runner.execution_id)
            running = not runner.agent_done
            runner.outcome = RunOutcome(None, agent_left_running=running, exit_now=running)
            return runner.outcome

    def _write_by(self, ending: ExecutionRunner | None = None) -> float | None:
        """When a write (for ``ending``, or of the pool's own) must give up so that the agents
        still running can be stopped in time; None if none is running."""
        others = [
            runner.lease.stop_by
            for runner in self.runners
            if runner is not ending and runner.stop is None and not runner.agent_done
        ]
        return min(others) if others else None

    def _ended(self, runner: ExecutionRunner, outcome: RunOutcome) -> None:
        runner.log_end()
        if not outcome.agent_left_running:
            return
        if outcome.exit_now and self.worker:
            # Its execution may run again elsewhere while its agent still runs here: end the
            # process now; the dispatcher requeues what this worker held when the leases pass.
            logger.error("Agent of execution %s did not stop; ending worker %s now", runner.execution_id, os.getpid())
            os._exit(1)
        if self.recycle_reason is None:
            self.recycle_reason = f"the agent of execution {runner.execution_id} did not stop when cancelled"
            logger.error("Worker %s: %s; it claims nothing more and ends", os.getpid(), self.recycle_reason)

    def _write_progress(self, now: float) -> None:
        """One transaction: every running execution's progress, and at a heartbeat all their leases."""
        self._next_flush = now + settings.SYMPHONY_PROGRESS_FLUSH_SECONDS
        live = [runner for runner in self.runners if runner.stop is None and not runner.agent_done]
        if not live:
            return
        beat = now >= self._next_beat
        taken = []
        try:
            with lock_wait_until(self._write_by()), transaction.atomic():
                flushed = {}
                for runner in live:
                    batch = runner.tracker.take()
                    if batch is None:
                        continue
                    taken.append((runner, batch))
                    flushed[runner] = _write_batch(runner, batch)
                renewed = renew_leases([runner.lease for runner in live]) if beat else None
        except CONNECTION_ERRORS as exc:
            for runner, batch in taken:
                runner.tracker.put_back(batch)
            reset_connection()
            logger.warning("Database unreachable while running %d executions (%s)", len(live), exc)
            self._next_beat = now + min(settings.SYMPHONY_HEARTBEAT_SECONDS, 0.5)
            return  # unknown: they keep running on their lease clocks
        except Exception:
            # Never let supervision end with agents running: the lease clocks decide.
            for runner, batch in taken:
                runner.tracker.put_back(batch)
            logger.exception("Progress or heartbeat of %d executions failed", len(live))
            return
        if beat:
            self._next_beat = now + settings.SYMPHONY_HEARTBEAT_SECONDS
        for runner in live:
            runner.ours = flushed.get(runner, True) and (renewed is None or runner.execution_id in renewed)

    # Claiming -----------------------------------------------------------------------

    def _claim(self, free: int) -> list[Execution] | None:
        try:
            with lock_wait_until(self._write_by()):
                return claim_many(owners=self.owners(), limit=min(free, CLAIM_BATCH), prepare=prepare)
        except CONNECTION_ERRORS as exc:
            # Nothing was claimed (the claim is one transaction).
            reset_connection()
            logger.warning("Worker %s stops claiming: database unreachable (%s)", os.getpid(), exc)
            return None
        except Exception:
            logger.exception("Worker %s stops claiming: the claim failed", os.getpid())
            return None

    def _spread(self) -> None:
        """Wake one more idle worker while a backlog is drained, so a burst spreads over the cluster."""
        now = time.monotonic()
        if now - self._last_spread < SPREAD_EVERY:
            return
        self._last_spread = now
        with lock_wait_until(self._write_by()):
            _wake(lambda: wakeups.waiting_wakeups() == 0 and has_ready_work() and wakeups.wake_workers(force=True))


def _write_batch(runner: ExecutionRunner, batch) -> bool:
    """One execution's batch in its own savepoint; a batch the database refuses is dropped, not retried."""
    try:
        return runner.tracker.write(batch)
    except CONNECTION_ERRORS:
        raise
    except Exception:
        logger.exception("Execution %s: progress could not be saved and is dropped", runner.execution_id)
        return True


def _wake(call) -> None:
    """A wake-up that fails (broker or database away) never costs the executions at hand: the
    dispatcher wakes workers for work left waiting."""
    try:
        call()
    except Exception as exc:
        logger.warning("Could not wake another worker (%s); the dispatcher will", exc)
