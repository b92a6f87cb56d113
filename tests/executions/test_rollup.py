import math
import random
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.utils import timezone

from executions import rollup, stats
from executions.models import ExecutionRollup, RollupMark
from executions.models import ExecutionState as S
from executions.models import RollupPeriod as P
from executions.rollup import DURATION_BOUNDS, MAX_SPAN, quantile, rollup_catch_up, rollup_pass
from tests.executions.rollups import ended

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 12, 3, 12, 0, 30, tzinfo=UTC)
ONE_BUCKET = 10**0.2  # the ratio between neighbouring bucket bounds


def snapshot() -> list[tuple]:
    return sorted(
        ExecutionRollup.objects.values_list(
            "period", "start", "agent_id", "completed", "failed", "cancelled", "timed_out", "ran", "durations", "routed"
        )
    )


def true_quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@pytest.fixture
def agents(make_agent):
    return make_agent("echo"), make_agent("echo", name="other")


@pytest.fixture
def history(agents):
    """300 executions over the last 55 minutes, run times spread over four decades."""
    rng = random.Random(4)
    rows = []
    for _ in range(300):
        agent = rng.choice(agents)
        state = rng.choices([S.COMPLETED, S.FAILED, S.CANCELLED, S.TIMED_OUT], [80, 10, 5, 5])[0]
        seconds = 10 ** rng.uniform(-1.5, 2.5)
        finished = NOW - timedelta(seconds=rng.uniform(1, 55 * 60))
        rows.append(ended(agent, state, finished, seconds=seconds, strategy=rng.choice([None, "content_match"])))
    return rows


def test_counts_and_quantiles_match_the_rows(history, agents):
    rollup_catch_up(NOW)

    hour = stats.WINDOWS["hour"]
    bars = stats.bars(window=hour, now=NOW)
    assert len(bars) == 12
    for bar in bars:
        inside = [e for e in history if bar.start <= e.finished_at < bar.start + hour.bar]
        want = Counter(e.state for e in inside)
        got = bar.figures
        assert (got.completed, got.failed, got.cancelled, got.timed_out) == (
            want[S.COMPLETED],
            want[S.FAILED],
            want[S.CANCELLED],
            want[S.TIMED_OUT],
        )
    per_agent = stats.by_agent(window=hour, now=NOW)
    for agent in agents:
        mine = [e for e in history if e.agent_id == agent.pk and e.finished_at >= bars[0].start]
        seconds = [(e.finished_at - e.started_at).total_seconds() for e in mine]
        figures = per_agent[agent.pk]
        assert figures.ended == len(mine)
        assert figures.routed == {"content_match": sum(1 for e in mine if e.routing)}
        for q, got in ((0.5, figures.p50), (0.95, figures.p95)):
            want = true_quantile(seconds, q)
            assert want / ONE_BUCKET <= got <= want * ONE_BUCKET, (q, got, want)


@pytest.mark.parametrize("period", [P.HOUR, P.SIX_HOURS])
def test_the_longer_periods_sum_the_five_minute_rows(history, period):
    rollup_catch_up(NOW)

    base = ExecutionRollup.objects.filter(period=P.FIVE_MINUTES)
    summed = ExecutionRollup.objects.filter(period=period)
    for name in ("completed", "failed", "cancelled", "timed_out", "ran", "duration_sum"):
        assert sum(getattr(r, name) for r in base) == pytest.approx(sum(getattr(r, name) for r in summed))
    assert [sum(r.durations[i] for r in base) for i in range(rollup.BUCKETS)] == [
        sum(r.durations[i] for r in summed) for i in range(rollup.BUCKETS)
    ]
    assert sum(r.completed + r.failed + r.cancelled + r.timed_out for r in summed) == len(history)


def test_a_pass_run_again_changes_nothing(history):
    rollup_catch_up(NOW)
    first = snapshot()

    rollup_pass(NOW)
    rollup_pass(NOW + timedelta(seconds=5))

    assert snapshot() == first


def test_a_row_that_commits_late_is_counted_within_the_settling_time(agents):
    echo, _ = agents
    ended(echo, S.COMPLETED, NOW - timedelta(seconds=5))
    rollup_catch_up(NOW)
    # Its end was stamped before the watermark, but it committed only now (a worker's batch of ends).
    ended(echo, S.FAILED, NOW - timedelta(seconds=50))

    rollup_pass(NOW + timedelta(seconds=5))

    figures = stats.by_agent(window=stats.WINDOWS["hour"], now=NOW + timedelta(seconds=5))[echo.pk]
    assert (figures.completed, figures.failed) == (1, 1)


def test_a_pass_reads_a_bounded_span_and_catches_up_pass_by_pass(agents):
    echo, _ = agents
    ended(echo, S.COMPLETED, NOW - timedelta(days=3))
    ended(echo, S.COMPLETED, NOW - timedelta(minutes=1))
    began = rollup_pass(NOW) - MAX_SPAN

    assert rollup_pass(NOW) - began <= 2 * MAX_SPAN
    passes = rollup_catch_up(NOW)

    assert passes > 1
    assert RollupMark.objects.get(name="ended").at == NOW
    assert sum(r.completed for r in ExecutionRollup.objects.filter(period=P.HOUR)) == 2


def test_rows_older_than_the_backfill_are_left_out(agents):
    echo, _ = agents
    ended(echo, S.COMPLETED, NOW - rollup.BACKFILL - timedelta(hours=2))
    ended(echo, S.COMPLETED, NOW - timedelta(minutes=2))

    rollup_catch_up(NOW)

    assert sum(r.completed for r in ExecutionRollup.objects.filter(period=P.HOUR)) == 1


def test_hours_are_folded_into_the_totals_once(agents):
    echo, other = agents
    ended(echo, S.COMPLETED, NOW - timedelta(hours=3), seconds=2)
    ended(echo, S.FAILED, NOW - timedelta(hours=2), seconds=20)
    ended(other, S.COMPLETED, NOW - timedelta(minutes=1), seconds=None)
    rollup_catch_up(NOW)
    rollup_catch_up(NOW + timedelta(seconds=30))

    totals = stats.totals()

    assert (totals[echo.pk].completed, totals[echo.pk].failed) == (1, 1)
    assert sum(totals[echo.pk].durations) == 2
    assert totals[other.pk].completed == 1 and sum(totals[other.pk].durations) == 0
    # Two hours later the last one is folded too, and nothing twice.
    rollup_catch_up(NOW + timedelta(hours=2))
    later = stats.totals()
    assert (later[echo.pk].completed, later[echo.pk].failed, later[other.pk].completed) == (1, 1, 1)
    assert ExecutionRollup.objects.filter(period=P.TOTAL).count() == 2


def test_five_minute_rows_are_forgotten_after_two_days(agents):
    echo, _ = agents
    ended(echo, S.COMPLETED, NOW - timedelta(minutes=1))
    rollup_catch_up(NOW)

    rollup_catch_up(NOW + timedelta(days=3))

    assert not ExecutionRollup.objects.filter(period=P.FIVE_MINUTES, start__lt=NOW).exists()
    assert ExecutionRollup.objects.filter(period=P.HOUR).exists()


@pytest.mark.parametrize("seconds", [0.001, 0.05, 1.0, 7.5, 300.0, 86_400.0, 10**6])
def test_a_single_duration_is_read_back_within_one_bucket(seconds):
    histogram = [0] * rollup.BUCKETS
    histogram[rollup.duration_bucket(seconds)] = 1

    got = quantile(histogram, 0.5)

    floor, top = DURATION_BOUNDS[0] / ONE_BUCKET, DURATION_BOUNDS[-1] * ONE_BUCKET
    want = min(max(seconds, floor), top)
    assert want / ONE_BUCKET <= got <= want * ONE_BUCKET


def test_an_empty_histogram_has_no_quantile():
    assert quantile([0] * rollup.BUCKETS, 0.5) is None


def test_the_dispatchers_roller_passes_at_once_while_behind_then_waits(agents):
    echo, _ = agents
    ended(echo, S.COMPLETED, timezone.now() - timedelta(days=2))
    roller = rollup.Roller(every=3600)

    roller.run()
    first = RollupMark.objects.get(name="ended").at
    roller.run()  # still days behind: no waiting
    second = RollupMark.objects.get(name="ended").at
    while RollupMark.objects.get(name="ended").at < timezone.now() - MAX_SPAN:
        roller.run()
    roller.run()  # caught up: the last pass reached its now
    caught_up = RollupMark.objects.get(name="ended").at
    roller.run()  # within the hour: nothing

    assert second - first == MAX_SPAN
    assert RollupMark.objects.get(name="ended").at == caught_up
    assert sum(r.completed for r in ExecutionRollup.objects.filter(period=P.HOUR)) == 1


def test_a_retried_failure_waiting_again_is_not_counted(agents):
    echo, _ = agents
    ended(echo, S.QUEUED, NOW - timedelta(minutes=3))  # FAILED, then retried: its old end is still stamped
    ended(echo, S.COMPLETED, NOW - timedelta(minutes=2))

    rollup_catch_up(NOW)

    figures = stats.by_agent(window=stats.WINDOWS["hour"], now=NOW)[echo.pk]
    assert (figures.ended, figures.completed) == (1, 1)


@pytest.mark.django_db(transaction=True)
def test_dispatchers_passing_at_once_take_turns_and_agree(make_agent):
    """Four dispatchers start their first pass together: the mark's row (or SQLite's write lock)
    makes them take turns, so the rows are those of one pass run to the end, with no duplicate."""
    echo = make_agent("echo")
    for minutes in (2, 30, 90, 60 * 30):
        ended(echo, S.COMPLETED, NOW - timedelta(minutes=minutes))
    barrier = threading.Barrier(4)
    unexpected = []

    def dispatcher():
        try:
            barrier.wait()
            rollup_catch_up(NOW)
        except Exception as exc:  # pragma: no cover - reported by the assertion below
            unexpected.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=dispatcher) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    together = snapshot()
    ExecutionRollup.objects.all().delete()
    RollupMark.objects.all().delete()
    rollup_catch_up(NOW)

    assert unexpected == []
    assert together == snapshot()
    assert sum(r.completed for r in ExecutionRollup.objects.filter(period=P.HOUR)) == 4
