"""Time-based work, run by the dispatcher loop beside the workers.

- Leases: a worker renews its execution's lease by heartbeat; an execution whose
  lease expired has lost its worker (killed, crashed, machine gone). It is put
  back in the queue as a new attempt, or failed once its attempts are spent.
- Waiting work: ready executions nobody has claimed for a while (a retry whose
  backoff has passed, a slot freed by a cancel, a wake-up lost with a crashed
  worker or a down broker) get a worker woken for them.
"""

import logging

from django.conf import settings
from django.utils import timezone

from executions import wakeups
from executions.claims import waiting_too_long
from executions.errors import error_detail
from executions.models import Execution
from executions.services import execution_fail
from executions.state import ACTIVE, TransitionError

logger = logging.getLogger(__name__)


def reap_expired_leases(now=None) -> int:
    """Requeue or fail executions whose worker stopped renewing the lease. Returns how many."""
    now = now or timezone.now()
    expired = Execution.objects.filter(state__in=ACTIVE, lease_expires_at__lt=now).values(
        "pk", "state", "attempt", "max_attempts", "lease_owner", "agent__name"
    )
    reaped = 0
    for row in expired:
        error = error_detail(
            kind="WorkerLost",
            message=f"The worker running attempt {row['attempt']} ({row['lease_owner'] or 'unknown'}) "
            "stopped renewing its lease.",
            attempt=row["attempt"],
            agent=row["agent__name"],
            retryable=True,
        )
        try:
            execution_fail(
                execution_id=row["pk"],
                from_state=row["state"],
                error=error,
                attempt=row["attempt"],
                max_attempts=row["max_attempts"],
                # still the lease we saw expire: a worker that renewed it meanwhile keeps it
                owner=row["lease_owner"],
                where={"lease_expires_at__lt": now},
                what="worker lost",
            )
        except TransitionError:
            continue  # it finished, was cancelled or renewed meanwhile
        reaped += 1
        logger.warning("Execution %s lost its worker (attempt %s)", row["pk"], row["attempt"])
    return reaped


def wake_for_waiting_work(now=None) -> bool:
    """Wake a worker if an execution has been ready for a dispatch interval and no wake-up waits.

    True if one was sent.
    """
    now = now or timezone.now()
    since = now - timezone.timedelta(seconds=settings.SYMPHONY_DISPATCH_INTERVAL)
    try:
        if not waiting_too_long(since=since) or wakeups.waiting_wakeups() > 0:
            return False
        return wakeups.wake_workers(force=True)
    except Exception:
        logger.warning("Could not wake a worker; trying again next pass", exc_info=True)
        return False
