"""Executions written as they are once ended, for the rollup's and the system pages' tests."""

from datetime import datetime, timedelta

from executions.models import Execution, Task


def ended(
    agent,
    state: str,
    finished_at: datetime,
    *,
    seconds: float | None = 1.0,
    strategy: str | None = None,
    submitted_by=None,
) -> Execution:
    """An execution of ``agent`` that ended in ``state`` at ``finished_at`` after running ``seconds``
    (None: it never started), routed by ``strategy`` if given. Written as a row, the way a worker's
    transitions leave it: the rollup reads rows, not how they came to be."""
    task = Task.objects.create(name=f"{state.lower()} run", agent=agent, created_by=submitted_by)
    started = finished_at - timedelta(seconds=seconds) if seconds is not None else None
    routing = {"strategy": strategy, "chosen": agent.name, "candidates": []} if strategy else None
    return Execution.objects.bulk_create(
        [
            Execution(
                task=task,
                agent=agent,
                state=state,
                timeout_seconds=300,
                started_at=started,
                finished_at=finished_at,
                routing=routing,
                submitted_by=submitted_by,
            )
        ]
    )[0]
