"""Executions that run until the test opens a gate, and the agent's own record of when each ran.

The agent is ``tests.agents.waits_for_gate``: it runs until the gate file exists
(or it is cancelled) and appends ``start``/``end``/``cancelled`` lines with the
execution, attempt, pid and time to a marks file. The marks are the agent-side
proof that no two attempts of one execution ever ran at the same time.
"""

from collections import defaultdict
from pathlib import Path

SUBMIT_HELD_THEN_RELEASE = """
from django.db import transaction
from executions.services import concurrency_group_create, execution_release, execution_submit
from routing.models import AgentConfig
gated, _ = AgentConfig.objects.update_or_create(
    name="gated", defaults={{"settings": {{"path": "tests.agents.waits_for_gate"}}, "max_concurrency": {limit}}}
)
group = None if {group!r} is None else concurrency_group_create(name="gated", max_concurrent={group!r})
held = [
    execution_submit(
        agent=gated,
        input_data={{"gate": {gate!r}, "marks": {marks!r}}},
        hold=True,
        max_attempts=3,
        concurrency_group=group,
    )
    for _ in range({n})
]
with transaction.atomic():
    for execution in held:
        execution_release(execution=execution)
print(",".join(str(execution.pk) for execution in held))
"""


def submit_gated(
    symphony, count: int, gate: Path, marks: Path, *, max_concurrency: int = 0, group: int | None = None
) -> list[int]:
    """``count`` executions of the gated agent, held and then released together in one transaction.

    With ``group``, they are submitted in a new concurrency group of that ``max_concurrent``.
    """
    script = SUBMIT_HELD_THEN_RELEASE.format(
        n=count, limit=max_concurrency, group=group, gate=str(gate), marks=str(marks)
    )
    result = symphony.manage("shell", "-c", script)
    return [int(pk) for pk in result.stdout.split()[-1].split(",")]


def most_at_once(db, execution_ids: list[int]) -> int:
    """The most of these executions that were ever PREPARING or RUNNING together, from the event history.

    Event ids follow commit order for these rows: a claim counts active executions
    only after taking its agent's (or group's) lock, so an end it saw has a smaller id.
    """
    placeholders = ", ".join(["%s"] * len(execution_ids))
    rows = db.rows(
        "SELECT id, execution_id, to_state FROM executions_executionevent "
        f"WHERE kind = 'state' AND execution_id IN ({placeholders}) ORDER BY id",
        tuple(execution_ids),
    )
    active, peak = set(), 0
    for row in rows:
        if row["to_state"] in ("PREPARING", "RUNNING"):
            active.add(row["execution_id"])
        else:
            active.discard(row["execution_id"])
        peak = max(peak, len(active))
    return peak


def runs(marks: Path) -> dict[int, list[tuple[float, float | None, int]]]:
    """Per execution, each run of the agent as (started, ended or None if it never ended, attempt)."""
    open_runs: dict[tuple[int, int, int], float] = {}
    closed: dict[int, list[tuple[float, float | None, int]]] = defaultdict(list)
    for line in marks.read_text().splitlines() if marks.exists() else []:
        what, execution, attempt, pid, at = line.split()
        key = (int(execution), int(attempt), int(pid))
        if what == "start":
            open_runs[key] = float(at)
        else:
            closed[key[0]].append((open_runs.pop(key), float(at), key[1]))
    for (execution, attempt, _), started in open_runs.items():
        closed[execution].append((started, None, attempt))
    return closed


def overlapping_runs(marks: Path) -> dict[int, list]:
    """Executions whose agent ran twice at the same time (a run with no end overlaps everything after it)."""
    found = {}
    for execution, spans in runs(marks).items():
        spans = sorted(spans)
        for before, after in zip(spans, spans[1:], strict=False):
            if before[1] is None or before[1] > after[0]:
                found[execution] = spans
    return found
