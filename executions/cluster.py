"""``manage.py symphony worker``: a django-q2 cluster that stops gracefully on SIGTERM or Ctrl-C.

With plain ``qcluster`` a SIGTERM to the process group (what honcho, systemd and
Ctrl-C under ``make run`` send) kills the sentinel and the workers at once: agents
die mid-run and their executions wait out their lease and run again, costing an
attempt. The sentinel may die holding the stop Event's lock, and the parent then
blocks on it until it is SIGKILLed.

Here:

- the sentinel, pusher and monitor ignore SIGTERM and SIGINT, so they stop only
  through django-q2's own path (pusher first, STOP pills, wait for the workers);
- each worker turns SIGTERM into ``executions.shutdown.request_stop()``: it claims
  nothing more and gives what it runs ``SYMPHONY_STOP_GRACE_SECONDS`` to finish
  before it is cancelled and put back in the queue, its attempt not counted;
- the sentinel forwards SIGTERM to its workers when it stops, so a signal sent to
  the leader alone, or a SIGINT, reaches them too;
- the parent reacts to the first SIGTERM or SIGINT outside signal context (see
  ``executions.stop_signals``), and kills whatever still runs at ``stop_bound()``.
"""

import logging
import os
import signal
import threading
import uuid
from contextlib import suppress
from multiprocessing.connection import wait

import psutil
from django.conf import settings
from django.db import connection
from django_q.cluster import Cluster, Sentinel, get_mp_context
from django_q.signals import post_spawn

from executions import shutdown
from executions.heartbeats import BEAT_SECONDS, Beater
from executions.models import ProcessRole
from executions.stop_signals import STOP_SIGNALS, blocked, on_stop_signal, read_signals, signal_pipe
from routing.factory import preload_kinds

logger = logging.getLogger(__name__)

# Beyond the grace and the cancel grace: time to record the requeues and for every process to exit.
STOP_MARGIN_SECONDS = 2.0


def stop_bound() -> float:
    """Seconds after a stop signal by which every process of a worker cluster has exited."""
    return settings.SYMPHONY_STOP_GRACE_SECONDS + shutdown.stop_cancel_grace() + STOP_MARGIN_SECONDS


class WorkerCluster(Cluster):
    """The parent process: starts the sentinel, waits for a stop signal, then stops it within ``stop_bound()``."""

    def __init__(self):
        with blocked():
            super().__init__()  # django-q2's handlers stop from signal context: replaced at once
            self._signals = signal_pipe()
        self._beater = Beater(ProcessRole.WORKER, process_ids=_children)

    def start(self) -> int:
        context = get_mp_context()
        self.stop_event, self.start_event = context.Event(), context.Event()
        self.sentinel = context.Process(
            target=GracefulSentinel,
            name=f"Process-{uuid.uuid4().hex}",
            args=(self.stop_event, self.start_event, self.cluster_id, self.broker, self.timeout),
        )
        with blocked():  # the sentinel is born with them pending, and ignores them before it lets them in
            self.sentinel.start()
        logger.info("Worker cluster %s starting", self.name)
        return self.pid

    def run(self) -> int:
        """Run until SIGTERM or SIGINT and stop gracefully; the exit status (0 after a clean stop)."""
        self.start()
        signalled = self._wait_for_stop_signal()
        if signalled:
            bound = stop_bound()
            watchdog = threading.Timer(bound, _kill_the_rest, args=(bound,))
            watchdog.daemon = True
            watchdog.start()
            logger.info(
                "Worker cluster %s stopping: running executions get %gs to finish, everything ends within %gs",
                self.name,
                settings.SYMPHONY_STOP_GRACE_SECONDS,
                bound,
            )
            self.stop_event.set()
        self.sentinel.join()
        self._beater.end()
        connection.close()
        clean = signalled and self.sentinel.exitcode == 0
        if not clean:
            logger.error("Worker cluster %s: sentinel ended with exit code %s", self.name, self.sentinel.exitcode)
        _kill(_leftovers(), why="still running after the cluster stopped")
        if clean:
            logger.info("Worker cluster %s has stopped", self.name)
        return 0 if clean else 1

    def _wait_for_stop_signal(self) -> bool:
        """Block until a stop signal (True) or the sentinel's end (False), saying every
        ``BEAT_SECONDS`` that the cluster is alive (``executions.heartbeats``)."""
        while True:
            self._beater.beat()
            connection.close()  # not one idle database connection per cluster between beats
            ready = wait([self._signals, self.sentinel.sentinel], timeout=BEAT_SECONDS)
            if self._signals in ready and read_signals(self._signals) & set(STOP_SIGNALS):
                return True
            if self.sentinel.sentinel in ready:
                return False


def _children() -> list[int]:
    """The cluster's processes below the parent (sentinel, workers...): a worker's lease owner names its pid."""
    return sorted(child.pid for child in psutil.Process().children(recursive=True))


class GracefulSentinel(Sentinel):
    """A sentinel that cannot be killed by the group's signal, and passes SIGTERM to its workers."""

    def __init__(self, stop_event, start_event, cluster_id, broker=None, timeout=None):
        # Born with SIGTERM and SIGINT blocked; django-q2's __init__ makes SIGTERM fatal,
        # so they are ignored (which drops any pending) only after it, then let in.
        super().__init__(stop_event, start_event, cluster_id, broker, timeout, start=False)
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        signal.set_wakeup_fd(-1)  # the parent's pipe, inherited by the fork
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        # Runs in each worker process as it starts (the pusher and monitor keep ignoring both).
        post_spawn.connect(self._worker_started, dispatch_uid="symphony-worker-stop", weak=False)
        self.start()

    def _worker_started(self, **_) -> None:
        preload_kinds()
        on_stop_signal(lambda signum: _stop_this_worker(), signums=(signal.SIGTERM,))
        if self.stop_event.is_set():  # started after the SIGTERMs were sent
            _stop_this_worker()

    def stop(self) -> None:
        for process in self.pool:
            with suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
        super().stop()


def _stop_this_worker() -> None:
    if shutdown.stop_requested():
        return
    shutdown.request_stop()
    logger.info(
        "Worker %s: stop requested; what it runs gets %gs to finish",
        os.getpid(),
        settings.SYMPHONY_STOP_GRACE_SECONDS,
    )


def _leftovers() -> list[psutil.Process]:
    """This process's descendants, and, if it leads its process group, the rest of the group (orphans)."""
    me = psutil.Process()
    found = {child.pid: child for child in me.children(recursive=True)}
    if os.getpgrp() == me.pid:
        for process in psutil.process_iter():
            with suppress(OSError):
                if process.pid != me.pid and os.getpgid(process.pid) == me.pid:
                    found[process.pid] = process
    return list(found.values())


def _kill(processes: list[psutil.Process], *, why: str) -> None:
    if not processes:
        return
    logger.error("Killing %s: %s", ", ".join(str(process.pid) for process in processes), why)
    for process in processes:
        with suppress(psutil.NoSuchProcess):
            process.kill()


def _kill_the_rest(bound: float) -> None:
    """The watchdog: the stop took longer than ``bound``; end every process of the cluster, then this one."""
    _kill(_leftovers(), why=f"the worker cluster did not stop within {bound:g}s")
    os._exit(1)
