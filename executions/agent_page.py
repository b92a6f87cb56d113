"""One agent's page: its profile, its "nothing fits" threshold and what the router learned about it.

For operators only, like the agents list: the corrections and the history it
shows are other users' tasks. What the router learned is what content match
reads for this agent on every decision: the corrections to it (examples), the
corrections away from it (negatives) and the queries of its completed tasks.
"""

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.views.decorators.http import require_safe

from executions import access, presenters
from executions.agent_activity import agent_histories, task_router
from routing.corrections import CORRECTIONS_LIMIT
from routing.models import AgentConfig, RoutingCorrection


def capabilities_shown(capabilities) -> list[tuple[str, list[str]]]:
    """(name, expertise tags) per capability, whichever of the two shapes the config holds."""
    shown = []
    for capability in capabilities if isinstance(capabilities, list) else []:
        if isinstance(capability, dict):
            expertise = capability.get("expertise")
            tags = [str(tag) for tag in expertise] if isinstance(expertise, list) else []
            shown.append((str(capability.get("name") or ""), tags))
        else:
            shown.append((str(capability), []))
    return shown


def agent_threshold(agent: AgentConfig) -> tuple[float, str]:
    """The score a task must reach for the router to give it to ``agent``, and the model's fallback note.

    Read off the model the router builds over every enabled agent: an agent's own threshold
    depends on how its tasks compare with the other agents' (``routing.semantic``). A disabled
    agent is in no decision; it is shown the global threshold.
    """
    model, note = task_router().content_model()
    return model.threshold(agent.pk), note


@require_safe
@login_required
def agent_detail(request: HttpRequest, agent_id: int) -> HttpResponse:
    if not access.is_operator(request.user):
        raise PermissionDenied("An agent's page shows everyone's tasks: it is for operators.")
    agent = get_object_or_404(AgentConfig, pk=agent_id)
    history = agent_histories([agent.pk])[agent.pk]
    threshold, note = agent_threshold(agent)
    corrections = RoutingCorrection.objects.select_related("chosen", "correct", "created_by")
    context = {
        "agent": agent,
        "capabilities": capabilities_shown(agent.capabilities),
        "threshold": threshold,
        "relevance_note": note,
        "corrections_to": list(corrections.filter(correct=agent)[:CORRECTIONS_LIMIT]),
        "corrections_away": list(corrections.filter(chosen=agent)[:CORRECTIONS_LIMIT]),
        "history": history,
    }
    return HttpResponse(presenters.render_text("executions/agent.html", context, request))
