"""Reads for the system pages and ``/metrics``: a fixed number of queries each, whatever the row count.

Figures over time come from the rollup (``executions.rollup``); what is waiting and
running now from grouped counts over the ``(state, ...)`` and ``(agent, state)``
indexes, which only ever hold the few rows not yet ended; recent failures and
recent runs from the ``(state, -id)`` and ``(agent, -id)`` indexes, newest first.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from django.db import connection
from django.db.models import Count
from django.utils import timezone

from executions.models import Execution, ExecutionRollup, Heartbeat, RollupMark
from executions.models import ExecutionState as S
from executions.models import RollupPeriod as P
from executions.rollup import BUCKETS, COUNTS, floor_to, quantile
from executions.state import ACTIVE
from routing.models import AgentConfig


@dataclass(frozen=True)
class Window:
    name: str
    span: timedelta
    period: int  # the rollup rows it reads
    bar: timedelta  # one bar of its charts


WINDOWS = {
    "hour": Window("hour", timedelta(hours=1), P.FIVE_MINUTES, timedelta(minutes=5)),
    "day": Window("day", timedelta(days=1), P.HOUR, timedelta(hours=1)),
    "week": Window("week", timedelta(days=7), P.SIX_HOURS, timedelta(hours=6)),
}
LIVE_STATES = (S.QUEUED, S.PREPARING, S.RUNNING)
# What the pages show of a run: its input, result, log and routing stay in the table.
SHOWN_RUN = ("id", "agent_id", "state", "task__name", "started_at", "finished_at", "updated_at")


@dataclass
class Figures:
    """Executions that ended in a span: counts by end state and run-time quantiles."""

    completed: int = 0
    failed: int = 0
    cancelled: int = 0
    timed_out: int = 0
    duration_sum: float = 0.0
    durations: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    routed: dict[str, int] = field(default_factory=dict)

    def add(self, row: "RollupRow | Figures") -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(row, name))
        self.duration_sum += row.duration_sum
        durations = self.durations
        for index, count in enumerate(row.durations):
            durations[index] += count
        for strategy, count in row.routed.items():
            self.routed[strategy] = self.routed.get(strategy, 0) + count

    @property
    def ended(self) -> int:
        return self.completed + self.failed + self.cancelled + self.timed_out

    @property
    def unsuccessful(self) -> int:
        return self.failed + self.timed_out

    @property
    def success_rate(self) -> float | None:
        return self.completed / self.ended if self.ended else None

    @property
    def routed_total(self) -> int:
        return sum(self.routed.values())

    @property
    def p50(self) -> float | None:
        return quantile(self.durations, 0.5)

    @property
    def p95(self) -> float | None:
        return quantile(self.durations, 0.95)


@dataclass
class Bar:
    start: datetime
    figures: Figures


def window_named(name: str | None) -> Window:
    return WINDOWS.get(name or "", WINDOWS["hour"])


class RollupRow(NamedTuple):
    """The figures of one ``ExecutionRollup`` row, read as a tuple: building a model instance per row
    was two thirds of the week's overview (1,400 rows)."""

    start: datetime
    agent_id: int
    completed: int
    failed: int
    cancelled: int
    timed_out: int
    duration_sum: float
    durations: list[int]
    routed: dict[str, int]


def _rollup_rows(window: Window, now: datetime) -> list[RollupRow]:
    return _read(ExecutionRollup.objects.filter(period=window.period, start__gte=_window_start(window, now)))


def _read(rows) -> list[RollupRow]:
    return [RollupRow(*values) for values in rows.values_list(*RollupRow._fields)]


def _window_start(window: Window, now: datetime) -> datetime:
    return floor_to(now, int(window.bar.total_seconds())) - window.span + window.bar


def bars(*, window: Window, now: datetime | None = None) -> list[Bar]:
    """The window's bars, oldest first, every one present (empty ones too): one query."""
    now = now or timezone.now()
    start, seconds = _window_start(window, now), int(window.bar.total_seconds())
    count = int(window.span / window.bar)
    found = [Bar(start + window.bar * n, Figures()) for n in range(count)]
    for row in _rollup_rows(window, now):
        index = int((row.start - start).total_seconds() // seconds)
        if 0 <= index < count:
            found[index].figures.add(row)
    return found


def by_agent(*, window: Window, now: datetime | None = None) -> dict[int, Figures]:
    """Each agent's figures over the window: one query."""
    figures: dict[int, Figures] = {}
    for row in _rollup_rows(window, now or timezone.now()):
        figures.setdefault(row.agent_id, Figures()).add(row)
    return figures


def totals() -> dict[int, Figures]:
    """Each agent's figures since the rollup began (the metrics' counters): two queries."""
    figures: dict[int, Figures] = {}
    rows = _read(ExecutionRollup.objects.filter(period=P.TOTAL))
    last_folded = _totals_mark()
    rows += _read(ExecutionRollup.objects.filter(period=P.HOUR, start__gte=last_folded)) if last_folded else []
    for row in rows:
        figures.setdefault(row.agent_id, Figures()).add(row)
    return figures


def _totals_mark() -> datetime | None:
    return RollupMark.objects.filter(name="totals").values_list("at", flat=True).first()


def live_counts() -> dict[int, dict[str, int]]:
    """Agent id -> state -> how many, for the states not yet ended: one query."""
    counts: dict[int, dict[str, int]] = {}
    # Naming the agents, and counting rows rather than ids, makes it a count of (agent, state)
    # ranges of the (agent, state) index alone, on SQLite and (index-only) on PostgreSQL; with the
    # states alone both read every waiting or running row from the table (1,000,000 rows with
    # 65,000 of them: SQLite 25 ms then 180 ms, PostgreSQL 35 ms then 420 ms).
    rows = (
        Execution.objects.filter(agent_id__in=AgentConfig.objects.values("pk"), state__in=LIVE_STATES)
        .values_list("agent_id", "state")
        .annotate(n=Count("*"))
    )
    for agent_id, state, n in rows.order_by():
        counts.setdefault(agent_id, {})[state] = n
    return counts


def recent_failures(limit: int = 10) -> list[Execution]:
    """The newest FAILED and TIMED_OUT executions: one query per state, each a walk of ``(state, -id)``."""
    found = []
    for state in (S.FAILED, S.TIMED_OUT):
        rows = Execution.objects.filter(state=state).select_related("agent", "task").only(*SHOWN_RUN, "agent__name")
        found += rows.order_by("-id")[:limit]
    return sorted(found, key=lambda execution: execution.pk, reverse=True)[:limit]


def recent_runs(agent_ids: list[int], per_agent: int = 5) -> dict[int, list[Execution]]:
    """Each agent's newest executions: two queries, the first a UNION ALL of walks of ``(agent, -id)``.

    Hand-written: Django refuses a LIMIT inside a compound statement on SQLite, and a window
    function (``ROW_NUMBER() OVER (PARTITION BY agent)``) would read every row.
    """
    runs: dict[int, list[Execution]] = {agent_id: [] for agent_id in agent_ids}
    if not agent_ids:
        return runs
    table = connection.ops.quote_name(Execution._meta.db_table)
    walk = f"SELECT * FROM (SELECT id FROM {table} WHERE agent_id = %s ORDER BY id DESC LIMIT %s) AS walk"
    with connection.cursor() as cursor:
        cursor.execute(" UNION ALL ".join([walk] * len(agent_ids)), [v for a in agent_ids for v in (a, per_agent)])
        ids = [row[0] for row in cursor.fetchall()]
    for execution in Execution.objects.filter(pk__in=ids).select_related("task").only(*SHOWN_RUN).order_by("-id"):
        runs[execution.agent_id].append(execution)
    return runs


def agents() -> list[AgentConfig]:
    return list(AgentConfig.objects.order_by("name"))


@dataclass
class WorkerRow:
    heartbeat: Heartbeat
    stale: bool
    running: list[Execution]


def workers(*, now: datetime | None = None, stale_after: timedelta, lease_limit: int = 500) -> list[WorkerRow]:
    """Every process with a heartbeat, stale ones marked, each worker cluster with the executions
    its processes hold leases on (a lease owner reads ``host:pid:...``): two queries."""
    now = now or timezone.now()
    beats = list(Heartbeat.objects.order_by("role", "host", "name"))
    # A claim sets the lease's expiry with its owner: the (state, lease_expires_at) index finds them.
    leased = (
        Execution.objects.filter(state__in=ACTIVE, lease_expires_at__isnull=False)
        .exclude(lease_owner="")
        .select_related("agent", "task")
        .only(*SHOWN_RUN, "lease_owner", "agent__name")
        .order_by("-lease_expires_at")[:lease_limit]
    )
    by_process: dict[tuple[str, int], list[Execution]] = {}
    for execution in leased:
        host, _, rest = execution.lease_owner.partition(":")
        pid = rest.partition(":")[0]
        if pid.isdigit():
            by_process.setdefault((host, int(pid)), []).append(execution)
    rows = []
    for beat in beats:
        pids = {beat.pid, *beat.process_ids} if beat.pid else set(beat.process_ids)
        running = [execution for pid in sorted(pids) for execution in by_process.get((beat.host, pid), [])]
        rows.append(WorkerRow(beat, now - beat.beat_at > stale_after, sorted(running, key=lambda e: -e.pk)))
    return rows
