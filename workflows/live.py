"""Live push for workflow runs: a hint to ``workflow.<run id>`` whenever a run's history grows.

Every change to a run or its steps writes a ``RunEvent`` (``engine.record``),
so hinting on those commits, or relaying them from the table, tells the run's
page everything it shows. The hints travel the executions layer's way
(``executions.live``): a dropped or repeated hint costs a re-render at most.
"""

from django.conf import settings
from django.db import transaction

from executions import live


def run_group(run_id: int) -> str:
    return f"workflow.{run_id}"


def publish_run_on_commit(run_id: int) -> None:
    """After the current transaction commits, hint the run's page (with a shared layer; the relay does otherwise)."""
    if settings.SYMPHONY_EVENT_RELAY:
        return
    transaction.on_commit(lambda: live.publish_group(run_group(run_id)))


def run_events_since(after_id: int | None, overlap: int) -> list[tuple[int, str]]:
    """The relay's source for runs: each committed ``RunEvent`` hints its run's group."""
    from workflows.models import RunEvent

    rows = live.rows_since(RunEvent.objects.all(), after_id, overlap, "run_id")
    return [(event_id, run_group(run_id)) for event_id, run_id in rows]
