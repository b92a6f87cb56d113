"""The body of a woken django-q2 worker: claim and run ready executions until none is left.

A worker keeps claiming for at most ``SYMPHONY_DRAIN_SECONDS`` (the execution
it is running when that passes still runs to its end), then hands itself back
to django-q2 with a fresh wake-up if work remains, so the cluster's recycling
and shutdown stay prompt. While draining a backlog it wakes one more idle
worker whenever no wake-up is waiting, so a burst spreads over the whole
cluster (and over every cluster) instead of one worker.
"""

import logging
import os
import time
from dataclasses import dataclass

from django.conf import settings

from executions import shutdown, wakeups
from executions.claims import claim, has_ready_work
from executions.lease import CONNECTION_ERRORS, reset_connection
from executions.runner import ExecutionRunner, worker_id

logger = logging.getLogger(__name__)

# How often a draining worker may look for idle workers to wake (seconds).
SPREAD_EVERY = 0.05


@dataclass
class DrainResult:
    ran: int = 0
    budget_spent: bool = False


def drain(*, budget: float | None = None) -> DrainResult:
    budget = settings.SYMPHONY_DRAIN_SECONDS if budget is None else budget
    owner = worker_id()
    result = DrainResult()
    started = time.monotonic()
    last_spread = started - SPREAD_EVERY
    while not shutdown.stop_requested():
        if time.monotonic() - started >= budget:
            result.budget_spent = True
            break
        try:
            execution = claim(owner=owner)
        except CONNECTION_ERRORS as exc:
            # Nothing was claimed (the claim is one transaction); the dispatcher wakes a worker later.
            reset_connection()
            logger.warning("Worker %s stops draining: database unreachable (%s)", os.getpid(), exc)
            return result
        if execution is None:
            break
        if time.monotonic() - last_spread >= SPREAD_EVERY:
            last_spread = time.monotonic()
            _spread()
        outcome = ExecutionRunner(owner=owner).run_claimed(execution)
        result.ran += 1
        if outcome.agent_left_running:
            # A sync agent ignored cancellation and still holds a thread of this process (or the
            # lease is about to pass to another worker). Its execution is recorded or will be
            # reaped; end the process so the agent ends too, and the cluster starts a clean worker.
            logger.error("Agent of execution %s did not stop; recycling worker %s", execution.pk, os.getpid())
            os._exit(1)
    if result.budget_spent and not shutdown.stop_requested():
        _wake(lambda: has_ready_work() and wakeups.wake_workers(force=True))
    return result


def _spread() -> None:
    """Wake one more idle worker while a backlog is drained, so a burst spreads over the cluster."""
    _wake(lambda: wakeups.waiting_wakeups() == 0 and has_ready_work() and wakeups.wake_workers(force=True))


def _wake(call) -> None:
    """A wake-up that fails (broker or database away) never costs the execution at hand: the
    dispatcher wakes workers for work left waiting."""
    try:
        call()
    except Exception as exc:
        logger.warning("Could not wake another worker (%s); the dispatcher will", exc)
