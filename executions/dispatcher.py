"""The dispatcher loop beside the workers: lease reaping and waking workers for
work left waiting, once per interval.

Any number may run: reaping is a compare-and-set, so two dispatchers never
requeue the same execution twice, and an extra wake-up only costs a message.
"""

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

from executions.recovery import reap_expired_leases, wake_for_waiting_work

logger = logging.getLogger(__name__)


def dispatch_once() -> dict[str, int]:
    close_old_connections()
    return {"reaped": reap_expired_leases(), "woken": int(wake_for_waiting_work())}


def run_dispatcher(stop: threading.Event, interval: float | None = None) -> None:
    interval = settings.SYMPHONY_DISPATCH_INTERVAL if interval is None else interval
    logger.info("Dispatcher started (every %.2fs)", interval)
    while not stop.is_set():
        try:
            counts = dispatch_once()
            if any(counts.values()):
                logger.info("Dispatcher: %(reaped)s reaped, %(woken)s worker woken", counts)
        except Exception:
            logger.exception("Dispatcher pass failed; trying again")
        stop.wait(interval)
    logger.info("Dispatcher stopped")
