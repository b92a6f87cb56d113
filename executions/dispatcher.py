"""The dispatcher loop beside the workers: lease reaping and waking workers for
work left waiting, once per interval, and the executions rollup every
``SYMPHONY_ROLLUP_SECONDS`` (``executions.rollup``).

Any number may run: reaping is a compare-and-set, so two dispatchers never
requeue the same execution twice, and an extra wake-up only costs a message.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

from executions.heartbeats import BEAT_SECONDS, Beater, heartbeats_forget_old
from executions.models import ProcessRole
from executions.recovery import reap_expired_leases, wake_for_waiting_work
from executions.rollup import Roller
from executions.signals import dispatch_passes

logger = logging.getLogger(__name__)


def dispatch_once() -> dict[str, int]:
    close_old_connections()
    counts = {"reaped": reap_expired_leases(), "woken": int(wake_for_waiting_work()), "repaired": 0}
    for task in dispatch_passes:
        try:
            counts["repaired"] += task()
        except Exception:
            logger.exception("Dispatcher pass %s failed; trying again next time", getattr(task, "__name__", task))
    return counts


def run_dispatcher(stop: threading.Event, interval: float | None = None) -> None:
    interval = settings.SYMPHONY_DISPATCH_INTERVAL if interval is None else interval
    logger.info("Dispatcher started (every %.2fs)", interval)
    # Its heartbeat says a pass has started lately (``executions.health``); at most every BEAT_SECONDS.
    beater = Beater(ProcessRole.DISPATCHER, every=min(interval, BEAT_SECONDS))
    roller = Roller(every=settings.SYMPHONY_ROLLUP_SECONDS)
    try:
        heartbeats_forget_old()
    except Exception:
        logger.exception("Could not remove old heartbeats; trying again at the next start")
    while not stop.is_set():
        close_old_connections()
        beater.beat()
        try:
            counts = dispatch_once()
            # Waking a worker is routine (work left waiting a moment): DEBUG, or an idle system logs a line a tick.
            if counts["reaped"] or counts["repaired"]:
                logger.info("Dispatcher: %(reaped)s reaped, %(woken)s worker woken, %(repaired)s repaired", counts)
            elif counts["woken"]:
                logger.debug("Dispatcher: %(woken)s worker woken", counts)
        except Exception:
            logger.exception("Dispatcher pass failed; trying again")
        roller.run()
        stop.wait(interval)
    beater.end()
    logger.info("Dispatcher stopped")
