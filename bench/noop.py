"""The work the benchmark runs: nothing, as a raw django-q2 task and as a Symphony agent."""

import os
import time

_fds: dict[str, int] = {}


def noop(marker: str | None = None) -> None:
    """The raw django-q2 task. With ``marker`` it appends when it ran to that file (one write),
    the only way to see it finish: with ``save_limit=-1`` django-q2 stores no result."""
    if marker:
        fd = _fds.get(marker)
        if fd is None:
            fd = _fds[marker] = os.open(marker, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.write(fd, f"{time.time():.6f}\n".encode())
    return None


def noop_agent(input_data, ctx):
    """The Symphony agent (kind python, settings {"path": "bench.noop.noop_agent"})."""
    return None
