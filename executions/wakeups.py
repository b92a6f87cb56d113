"""Waking the django-q2 workers.

Our execution table is the queue: a QUEUED row that is due is work. A django-q2
message carries no execution; it only wakes a worker, which then claims ready
executions from the table (``executions.claims``) until none is left. So:

- a burst of N submits costs as many messages as there are workers to wake,
  not N, and the broker is no longer the bottleneck;
- a message lost with a crashed worker loses no work (the dispatcher wakes a
  worker for executions that stayed ready too long);
- priority and per-agent concurrency limits are decided at claim time, against
  the database, where they are exact across any number of workers.
"""

import logging
import os

from django.conf import settings
from django.db import transaction
from django_q.brokers import get_broker
from django_q.tasks import async_task

logger = logging.getLogger(__name__)

DRAIN = "executions.tasks.drain"

_broker = None
_broker_pid = None


def broker():
    """One broker per process: ``async_task`` would otherwise build one (and a Redis connection) per call."""
    global _broker, _broker_pid
    if _broker is None or _broker_pid != os.getpid():
        _broker, _broker_pid = get_broker(), os.getpid()
    return _broker


def waiting_wakeups() -> int:
    return broker().queue_size()


def wake_workers(*, force: bool = False) -> bool:
    """Send one wake-up unless ``SYMPHONY_WAKEUPS`` are already waiting. True if one was sent.

    Any waiting wake-up will be taken by a worker after the caller's rows
    committed, and that worker drains everything ready, so more would only be
    messages that find nothing to do.
    """
    if not force and waiting_wakeups() >= settings.SYMPHONY_WAKEUPS:
        return False
    async_task(DRAIN, broker=broker(), task_name="symphony-drain")
    return True


def wake_on_commit() -> None:
    """Wake a worker once the caller's transaction commits; a rolled-back submit wakes nobody.

    A failed wake-up (broker down) never fails the caller: the rows are
    committed, and the dispatcher wakes a worker for work left waiting.
    """
    transaction.on_commit(wake_workers, robust=True)
