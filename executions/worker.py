"""The body of a woken django-q2 worker: run ready executions in this process's slots until none is left.

See ``executions.slots`` for how a worker claims, supervises and ends them.
"""

from django.conf import settings

from executions.slots import DrainResult, SlotPool


def drain(*, budget: float | None = None) -> DrainResult:
    budget = settings.SYMPHONY_DRAIN_SECONDS if budget is None else budget
    return SlotPool(worker=True).drain(budget=budget)
