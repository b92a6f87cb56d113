"""The rollup behind the overview, the agents page and ``/metrics``: per agent and period (five
minutes, an hour, six hours), how the executions that ended went (counts by end state, a run-time
histogram, the routing strategies).

Counting a million executions per request is out of the question, and so is a
write on the transition path (workers measure it). The dispatcher's loop calls
``rollup_pass()`` every few seconds instead; it rebuilds, from the rows (a range
read of the ``finished_at`` index), every five minutes from ``SETTLE`` before its
watermark up to now, then the hours those are in from them, then the six hours
from the hours. A page reads about 30 rows per agent whatever its window (the
hour: twelve five-minute rows; the day: 24 hours; the week: 28 six-hour rows).

- Bounded: one pass reads at most ``MAX_SPAN`` of ended rows; a rollup that is
  behind (the first start, a dispatcher away for a day) catches up pass by pass.
- Idempotent: a period is replaced by what its rows say now, never incremented,
  so a pass run twice writes the same rows.
- Late rows: a row whose ``finished_at`` is earlier than its commit (a worker's
  batch of ends) is counted if it commits within ``SETTLE`` of that time.
- Several dispatchers: a pass holds the watermark's row lock (PostgreSQL) or the
  write lock (SQLite's IMMEDIATE transactions) for its transaction, so passes
  take turns.

Hours that will not be rebuilt again are folded, once, into per-agent totals
(``period`` 0): the counters of ``/metrics``. Five-minute rows are kept two
days, the others five weeks.
"""

import bisect
import logging
import math
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models.fields.json import KT
from django.utils import timezone

from executions.models import Execution, ExecutionRollup, RollupMark
from executions.models import ExecutionState as S
from executions.models import RollupPeriod as P

logger = logging.getLogger(__name__)

# Upper bounds (seconds) of the run-time buckets: five a decade from 10 ms to a day, then the rest.
# A quantile read from them is within one bucket (a factor of 10**0.2, 1.58) of the true one.
DURATION_BOUNDS: tuple[float, ...] = tuple(round(10 ** (k / 5), 6) for k in range(-10, 25))
BUCKETS = len(DURATION_BOUNDS) + 1
END_STATES = {S.COMPLETED: "completed", S.FAILED: "failed", S.CANCELLED: "cancelled", S.TIMED_OUT: "timed_out"}
COUNTS = tuple(END_STATES.values())

SETTLE = timedelta(seconds=60)
MAX_SPAN = timedelta(hours=2)
BACKFILL = timedelta(days=8)
KEEP = {P.FIVE_MINUTES: timedelta(days=2), P.HOUR: timedelta(days=35), P.SIX_HOURS: timedelta(days=35)}
# Each period after the first is summed from the one before.
SUMMED = ((P.HOUR, P.FIVE_MINUTES), (P.SIX_HOURS, P.HOUR))
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def duration_bucket(seconds: float) -> int:
    return bisect.bisect_left(DURATION_BOUNDS, seconds)


def quantile(histogram: list[int], q: float) -> float | None:
    """The ``q`` quantile of a run-time histogram, interpolated geometrically inside its bucket; None when empty."""
    total = sum(histogram)
    if not total:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(histogram):
        if count and seen + count >= rank:
            upper = DURATION_BOUNDS[index] if index < len(DURATION_BOUNDS) else DURATION_BOUNDS[-1] * 10**0.2
            lower = DURATION_BOUNDS[index - 1] if index else upper / 10**0.2
            share = (rank - seen) / count
            return lower * (upper / lower) ** share
        seen += count
    return DURATION_BOUNDS[-1]


def merged(histograms: Iterable[list[int]]) -> list[int]:
    total = [0] * BUCKETS
    for histogram in histograms:
        for index, count in enumerate(histogram):
            total[index] += count
    return total


def floor_to(moment: datetime, seconds: int) -> datetime:
    return EPOCH + timedelta(seconds=math.floor((moment - EPOCH).total_seconds() / seconds) * seconds)


class _Tally:
    """One rollup row in the making."""

    def __init__(self):
        self.counts = dict.fromkeys(COUNTS, 0)
        self.ran, self.duration_sum = 0, 0.0
        self.durations = [0] * BUCKETS
        self.routed: dict[str, int] = defaultdict(int)

    def add_row(self, state: str, started_at, finished_at, strategy) -> None:
        self.counts[END_STATES[state]] += 1
        if started_at is not None:
            seconds = max((finished_at - started_at).total_seconds(), 0.0)
            self.ran += 1
            self.duration_sum += seconds
            self.durations[duration_bucket(seconds)] += 1
        if strategy:
            self.routed[strategy] += 1

    def add_rollup(self, row: ExecutionRollup) -> None:
        for name in COUNTS:
            self.counts[name] += getattr(row, name)
        self.ran += row.ran
        self.duration_sum += row.duration_sum
        for index, count in enumerate(row.durations):
            self.durations[index] += count
        for strategy, count in row.routed.items():
            self.routed[strategy] += count

    def row(self, period: int, start: datetime, agent_id: int) -> ExecutionRollup:
        return ExecutionRollup(
            period=period,
            start=start,
            agent_id=agent_id,
            **self.counts,
            ran=self.ran,
            duration_sum=self.duration_sum,
            durations=self.durations,
            routed=dict(self.routed),
        )


def _mark(name: str, default: datetime) -> RollupMark:
    """The mark's row, locked for this transaction; made at ``default`` the first time."""
    mark = RollupMark.objects.select_for_update().filter(name=name).first()
    if mark is not None:
        return mark
    try:
        with transaction.atomic():
            RollupMark.objects.create(name=name, at=default)
    except IntegrityError:  # another dispatcher made it first
        pass
    return RollupMark.objects.select_for_update().get(name=name)


def _rebuild_base(start: datetime, end: datetime) -> None:
    # The state is checked here, not in the query: with ``state IN (...)`` beside the range, SQLite
    # walked the (state, -id) index over nine rows in ten (measured over 1,000,000 rows: minutes
    # per pass instead of milliseconds). The few rows in the range not ended (a retried FAILED) are skipped.
    rows = Execution.objects.filter(finished_at__gte=start, finished_at__lt=end).values_list(
        "agent_id", "state", "started_at", "finished_at", KT("routing__strategy")
    )
    tallies: dict[tuple[datetime, int], _Tally] = defaultdict(_Tally)
    for agent_id, state, started_at, finished_at, strategy in rows.iterator(chunk_size=5000):
        if state not in END_STATES:
            continue
        tallies[floor_to(finished_at, P.FIVE_MINUTES), agent_id].add_row(state, started_at, finished_at, strategy)
    ExecutionRollup.objects.filter(period=P.FIVE_MINUTES, start__gte=start, start__lt=end).delete()
    ExecutionRollup.objects.bulk_create(
        [tally.row(P.FIVE_MINUTES, when, agent_id) for (when, agent_id), tally in tallies.items()], batch_size=1000
    )


def _rebuild_summed(period: int, parts: int, start: datetime, end: datetime) -> None:
    """The ``period`` rows that hold [start, end), summed from their ``parts`` rows."""
    first = floor_to(start, period)
    last = floor_to(end - timedelta(microseconds=1), period) + timedelta(seconds=period)
    tallies: dict[tuple[datetime, int], _Tally] = defaultdict(_Tally)
    for row in ExecutionRollup.objects.filter(period=parts, start__gte=first, start__lt=last):
        tallies[floor_to(row.start, period), row.agent_id].add_rollup(row)
    ExecutionRollup.objects.filter(period=period, start__gte=first, start__lt=last).delete()
    ExecutionRollup.objects.bulk_create(
        [tally.row(period, when, agent_id) for (when, agent_id), tally in tallies.items()], batch_size=1000
    )


def _fold_totals(final_before: datetime, began: datetime) -> None:
    """Add every hour that ends before ``final_before`` and is not folded yet to the totals, once."""
    mark = _mark("totals", began)
    until = floor_to(final_before, P.HOUR)
    if until <= mark.at:
        return
    totals = {row.agent_id: row for row in ExecutionRollup.objects.filter(period=P.TOTAL)}
    tallies: dict[int, _Tally] = defaultdict(_Tally)
    for row in ExecutionRollup.objects.filter(period=P.HOUR, start__gte=mark.at, start__lt=until):
        tallies[row.agent_id].add_rollup(row)
    for agent_id, tally in tallies.items():
        total = tally.row(P.TOTAL, EPOCH, agent_id)
        if agent_id in totals:
            tally.add_rollup(totals[agent_id])
            total = tally.row(P.TOTAL, EPOCH, agent_id)
            total.pk = totals[agent_id].pk
            total.save(force_update=True)
        else:
            total.save(force_insert=True)
    mark.at = until
    mark.save(update_fields=["at"])


def rollup_pass(now: datetime | None = None) -> datetime:
    """Roll up what ended since the last pass (at most ``MAX_SPAN`` of it); returns the new watermark.

    The watermark equals ``now`` once the rollup has caught up.
    """
    now = now or timezone.now()
    began = floor_to(now - BACKFILL, P.HOUR)
    with transaction.atomic():
        mark = _mark("ended", began)
        start = floor_to(mark.at - SETTLE, P.FIVE_MINUTES)
        end = min(now, max(mark.at, start) + MAX_SPAN)
        _rebuild_base(start, end)
        for period, parts in SUMMED:
            _rebuild_summed(period, parts, start, end)
        mark.at = max(mark.at, end)
        mark.save(update_fields=["at"])
        # Rows from ``mark.at - SETTLE`` on will be rebuilt again: only the hours before are final.
        _fold_totals(mark.at - SETTLE, began)
        for period, keep in KEEP.items():
            ExecutionRollup.objects.filter(period=period, start__lt=floor_to(now - keep, P.HOUR)).delete()
    return mark.at


def rollup_catch_up(now: datetime | None = None) -> int:
    """Pass after pass until the watermark reaches ``now``; how many passes it took (the bench, the tests)."""
    now = now or timezone.now()
    passes = 1
    while rollup_pass(now) < now:
        passes += 1
    return passes


class Roller:
    """Runs a pass at most every ``every`` seconds, and at once again while catching up; a failed
    pass is logged and tried again next time, never raised (the dispatcher's other work goes on)."""

    def __init__(self, every: float):
        self.every = every
        self._next = float("-inf")

    def run(self) -> None:
        if time.monotonic() < self._next:
            return
        now = timezone.now()
        try:
            reached = rollup_pass(now)
        except Exception:
            logger.exception("The executions rollup failed; trying again next pass")
            reached = None
        self._next = time.monotonic() + (0 if reached is not None and reached < now else self.every)
