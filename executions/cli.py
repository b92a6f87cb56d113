"""Terminal rendering for ``manage.py symphony``: a progress bar that follows an execution.

The layers above add subcommands of their own (``symphony workflow ...``) and
demo content through the registries at the end, so the command lives here
without importing them.
"""

import json
import sys
import time

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from executions.models import Execution
from executions.presenters import routing_summary
from executions.state import FINISHED

BAR_WIDTH = 30


def progress_line(execution: Execution) -> str:
    filled = int(BAR_WIDTH * execution.progress / 100)
    bar = "#" * filled + "-" * (BAR_WIDTH - filled)
    step = f" {execution.current_step}" if execution.current_step else ""
    attempt = f" attempt {execution.attempt}/{execution.max_attempts}" if execution.max_attempts > 1 else ""
    return f"[{bar}] {execution.progress:5.1f}% {execution.state}{attempt}{step}"


def follow(execution_id: int, out=None, interval: float = 0.2) -> Execution:
    """Redraw the progress line until the execution finishes; returns it finished."""
    out = out or sys.stdout
    interactive = out.isatty()
    last = None
    while True:
        execution = Execution.objects.get(pk=execution_id)
        line = progress_line(execution)
        if line != last:
            out.write(f"\r\033[K{line}" if interactive else f"{line}\n")
            out.flush()
            last = line
        if execution.state in FINISHED:
            if interactive:
                out.write("\n")
            return execution
        time.sleep(interval)


def outcome_text(execution: Execution) -> str:
    if execution.error:
        error = execution.error
        text = f"{execution.state}: {error.get('type')}: {error.get('message')}"
        if error.get("traceback"):
            text += "\n" + error["traceback"].rstrip()
        return text
    return json.dumps(execution.result, indent=2, ensure_ascii=False)


def decision_text(decision) -> str:
    """A routing decision as a table: every candidate with its score, load and note, the choice marked.

    The same shaping as the execution page and the admin (``presenters.routing_summary``), as text.
    """
    routing = routing_summary(decision.as_dict())
    rows = [("", "agent", "score", "load", "note")]
    rows += [
        ("*" if c["chosen"] else "", c["agent"], str(c["score"]), str(c["load"]), str(c["note"]))
        for c in routing["candidates"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    lines = [f"strategy: {routing['strategy']}"]
    lines += [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1] for row in rows
    ]
    lines.append(f"chosen: {routing['chosen'] or 'none'}: {routing['reason']}")
    return "\n".join(line.rstrip() for line in lines)


def acting_user(username: str | None):
    """The user named by ``--as``, for whom a command acts; None without it (the CLI acts as the
    system, which may do anything: a shell on the server already can)."""
    if not username:
        return None
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user named {username!r}.")
    return user


class Subcommand:
    """A ``manage.py symphony <name>`` subcommand contributed by a layer above (from its AppConfig.ready)."""

    name = ""
    help = ""

    def add_arguments(self, parser) -> None:
        raise NotImplementedError

    def handle(self, command, **options) -> None:
        raise NotImplementedError


SUBCOMMANDS: dict[str, Subcommand] = {}
# Called by ``symphony load-demo`` after the demo agents exist; each returns a line to print.
DEMO_LOADERS: list = []


def register_subcommand(subcommand: Subcommand) -> None:
    SUBCOMMANDS[subcommand.name] = subcommand


def register_demo_loader(loader) -> None:
    if loader not in DEMO_LOADERS:
        DEMO_LOADERS.append(loader)
