"""``/metrics``: Prometheus metrics read from the database at scrape time.

A custom collector (prometheus-client's ``Collector``) rather than counters kept in
memory: executions end in worker processes on any machine, and the rows and the
rollup already hold every figure, so any web process answers for all of them
with no multiprocess directory. A scrape costs the same few indexed queries as
the overview.

Who may scrape: anyone when ``SYMPHONY_METRICS_PUBLIC`` is on (a Prometheus on a
private network); otherwise an operator or a staff member, by session or by an
API token (``Authorization: Bearer sym_...``). Only aggregates are shown.
"""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry

from executions import access, stats
from executions.heartbeats import BEAT_SECONDS, MISSED_BEATS
from executions.models import Heartbeat
from executions.rollup import COUNTS, DURATION_BOUNDS, END_STATES
from symphony.tokens import bearer_token, user_for_token

STATE_OF = {name: state for state, name in END_STATES.items()}


class SymphonyCollector(Collector):
    def collect(self):
        names = {agent.pk: agent.name for agent in stats.agents()}
        live = stats.live_counts()
        current = GaugeMetricFamily(
            "symphony_executions", "Executions not yet ended, by state and agent.", labels=["state", "agent"]
        )
        for agent_id, counts in sorted(live.items()):
            for state, count in sorted(counts.items()):
                current.add_metric([state, names.get(agent_id, str(agent_id))], count)
        yield current
        queue = GaugeMetricFamily("symphony_queue_depth", "Executions QUEUED, waiting for a worker.")
        queue.add_metric([], sum(counts.get("QUEUED", 0) for counts in live.values()))
        yield queue

        totals = stats.totals()
        ended = CounterMetricFamily(
            "symphony_executions_ended",
            "Executions that ended, by end state and agent, since the rollup began.",
            labels=["state", "agent"],
        )
        durations = HistogramMetricFamily(
            "symphony_execution_duration_seconds", "Run time of ended executions (started to ended).", labels=["agent"]
        )
        routed = CounterMetricFamily(
            "symphony_routing_decisions",
            "Ended executions whose agent the router chose, by strategy and agent.",
            labels=["strategy", "agent"],
        )
        for agent_id, figures in sorted(totals.items()):
            agent = names.get(agent_id, str(agent_id))
            for name in COUNTS:
                ended.add_metric([STATE_OF[name], agent], getattr(figures, name))
            cumulative, buckets = 0, []
            for bound, count in zip((*DURATION_BOUNDS, float("inf")), figures.durations, strict=True):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            durations.add_metric([agent], buckets, sum_value=figures.duration_sum)
            for strategy, count in sorted(figures.routed.items()):
                routed.add_metric([strategy, agent], count)
        yield ended
        yield durations
        yield routed

        workers = GaugeMetricFamily(
            "symphony_live_processes", "Worker clusters and dispatchers with a fresh heartbeat.", labels=["role"]
        )
        fresh = timezone.now() - timezone.timedelta(seconds=BEAT_SECONDS * MISSED_BEATS)
        counts = dict.fromkeys(("worker", "dispatcher"), 0)
        for role in Heartbeat.objects.filter(beat_at__gte=fresh).values_list("role", flat=True):
            counts[role] = counts.get(role, 0) + 1
        for role, count in sorted(counts.items()):
            workers.add_metric([role], count)
        yield workers


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)


def _scraper(request: HttpRequest):
    """Who is asking: the bearer token's user if one is presented, else the session's."""
    raw = bearer_token(request.headers.get("Authorization"))
    return request.user if raw is None else user_for_token(raw)


def _may_scrape(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active and (user.is_staff or access.is_operator(user)))


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    user = None if settings.SYMPHONY_METRICS_PUBLIC else _scraper(request)
    if not settings.SYMPHONY_METRICS_PUBLIC and not _may_scrape(user):
        status = 403 if user is not None and user.is_authenticated else 401
        response = HttpResponse("Metrics need an operator's or staff session or API token.\n", status=status)
        if status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="symphony"'
        return response
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SymphonyCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
