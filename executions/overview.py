"""The pages that show the whole system: overview, agents and workers.

They show every user's work (recent failures name their tasks), so they are for
operators only (``access.is_operator``: the "operators" group, superusers);
anyone else signed in gets a 403. Enabling or disabling an agent takes
``routing.change_agentconfig`` as in the admin and the API, and goes through
``routing.services``.

Each page polls its own body (``hx-trigger="every 5s"``, the partial rendered
alone for an HTMX request): its figures are counts and rollup rows that change
with every execution, so a push per event would re-render them many times a
second under load, while a poll costs a fixed handful of indexed queries.
"""

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.utils import timezone
from django.views.decorators.http import require_POST, require_safe

from executions import access, charts, presenters, stats
from executions.heartbeats import BEAT_SECONDS, MISSED_BEATS
from executions.models import ExecutionState as S
from routing import services as routing_services
from routing.models import AgentConfig

CHANGE_AGENT = "routing.change_agentconfig"
LABEL_FORMATS = {"hour": "%H:%M", "day": "%H:%M", "week": "%a %H:%M"}


def _operators_only(request: HttpRequest) -> None:
    if not access.is_operator(request.user):
        raise PermissionDenied("The system pages show everyone's work: they are for operators.")


def _render(request: HttpRequest, template: str, context: dict) -> HttpResponse:
    name = f"{template}#page-body" if request.htmx else template
    return HttpResponse(presenters.render_text(name, context, request))


@require_safe
@login_required
def overview(request: HttpRequest) -> HttpResponse:
    _operators_only(request)
    window = stats.window_named(request.GET.get("window"))
    now = timezone.now()
    bars = stats.bars(window=window, now=now)
    live = stats.live_counts()
    whole = stats.Figures()
    for bar in bars:
        whole.add(bar.figures)
    labels = LABEL_FORMATS[window.name]
    context = {
        "window": window,
        "windows": list(stats.WINDOWS),
        "whole": whole,
        "throughput": charts.throughput_chart(bars, labels),
        "durations": charts.duration_chart(bars, labels),
        "queued": sum(counts.get(S.QUEUED, 0) for counts in live.values()),
        "running": sum(counts.get(S.RUNNING, 0) + counts.get(S.PREPARING, 0) for counts in live.values()),
        "failures": stats.recent_failures(),
    }
    return _render(request, "executions/overview.html", context)


def _agent_rows(window: stats.Window) -> list[dict]:
    agents = stats.agents()
    live = stats.live_counts()
    figures = stats.by_agent(window=window)
    routed_total = sum(f.routed_total for f in figures.values())
    recent = stats.recent_runs([agent.pk for agent in agents])
    rows = []
    for agent in agents:
        counts, mine = live.get(agent.pk, {}), figures.get(agent.pk) or stats.Figures()
        rows.append(
            {
                "agent": agent,
                "running": counts.get(S.RUNNING, 0) + counts.get(S.PREPARING, 0),
                "queued": counts.get(S.QUEUED, 0),
                "figures": mine,
                "share": mine.routed_total / routed_total if routed_total else None,
                "recent": recent.get(agent.pk, []),
            }
        )
    return rows


@require_safe
@login_required
def agent_list(request: HttpRequest) -> HttpResponse:
    _operators_only(request)
    return _agents_page(request)


def _agents_page(request: HttpRequest) -> HttpResponse:
    window = stats.window_named(request.GET.get("window") or "day")
    context = {
        "window": window,
        "windows": list(stats.WINDOWS),
        "rows": _agent_rows(window),
        "may_change": request.user.has_perm(CHANGE_AGENT),
    }
    return _render(request, "executions/agents.html", context)


@require_POST
@login_required
def agent_set_enabled(request: HttpRequest, agent_id: int) -> HttpResponse:
    if not request.user.has_perm(CHANGE_AGENT):
        raise PermissionDenied(f"Enabling or disabling agents needs the {CHANGE_AGENT} permission.")
    agent = get_object_or_404(AgentConfig, pk=agent_id)
    routing_services.agent_config_set_enabled(agent=agent, enabled=request.POST.get("enabled") == "1", by=request.user)
    if request.htmx and access.is_operator(request.user):
        return _agents_page(request)
    return redirect("executions:agents")


@require_safe
@login_required
def worker_list(request: HttpRequest) -> HttpResponse:
    _operators_only(request)
    stale_after = timedelta(seconds=BEAT_SECONDS * MISSED_BEATS)
    context = {"workers": stats.workers(stale_after=stale_after), "stale_after": stale_after}
    return _render(request, "executions/workers.html", context)
