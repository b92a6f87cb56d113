"""Worker clusters and dispatchers say they are alive: a row each, its time moved on every few seconds.

django-q2 keeps its own cluster statistics, but in the broker's cache: with the
ORM broker that is each process's memory, which the web process cannot read. A
row in the database works with every broker, and costs one UPDATE per process
every ``BEAT_SECONDS``.
"""

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from executions.models import Heartbeat

logger = logging.getLogger(__name__)

BEAT_SECONDS = 5.0
# A process is taken for dead after missing this many beats.
MISSED_BEATS = 3
# Rows of processes that died without saying so are removed after this long.
FORGET_AFTER = timedelta(days=1)


def process_name(role: str) -> str:
    return f"{role}:{socket.gethostname()}:{os.getpid()}"[:200]


def heartbeat_beat(*, role: str, name: str, process_ids: list[int] | None = None) -> None:
    """Record that the process ``name`` is alive now, with its children's ids (a worker cluster's
    workers: the lease owners of what it runs name them, so the workers page can tell)."""
    now = timezone.now()
    changes = {"beat_at": now, "host": socket.gethostname()[:200], "pid": os.getpid()}
    if process_ids is not None:
        changes["process_ids"] = process_ids
    if Heartbeat.objects.filter(name=name).update(**changes):
        return
    try:
        with transaction.atomic():
            Heartbeat.objects.create(name=name, role=role, **changes)
    except IntegrityError:  # a pid reused by a new process of the same name: the row is its now
        Heartbeat.objects.filter(name=name).update(role=role, **changes)


def heartbeat_end(*, name: str) -> None:
    """The process stops cleanly: it is no longer counted at once, not after its beats go stale."""
    Heartbeat.objects.filter(name=name).delete()


def heartbeats_forget_old() -> int:
    deleted, _ = Heartbeat.objects.filter(beat_at__lt=timezone.now() - FORGET_AFTER).delete()
    return deleted


class Beater:
    """Beats for one process at most every ``BEAT_SECONDS``, however often it is asked; a failed
    beat (the database away) is logged and tried again next time, never raised."""

    def __init__(self, role: str, every: float = BEAT_SECONDS, process_ids: Callable[[], list[int]] | None = None):
        self.role, self.every, self.process_ids = role, every, process_ids
        self.name = process_name(role)
        self._last = float("-inf")

    def beat(self) -> None:
        if time.monotonic() - self._last < self.every:
            return
        try:
            children = self.process_ids() if self.process_ids is not None else None
            heartbeat_beat(role=self.role, name=self.name, process_ids=children)
        except Exception as exc:
            logger.warning("%s could not record its heartbeat: %s: %s", self.name, type(exc).__name__, exc)
            return
        self._last = time.monotonic()

    def end(self) -> None:
        try:
            heartbeat_end(name=self.name)
        except Exception as exc:
            logger.warning("%s could not remove its heartbeat: %s: %s", self.name, type(exc).__name__, exc)
