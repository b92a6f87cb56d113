"""django-q2 entry points: thin adapters, nothing else."""

from executions.worker import drain as drain_ready


def drain() -> int:
    """Run ready executions until none is left; returns how many ran."""
    return drain_ready().ran
