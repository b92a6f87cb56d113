"""Correcting a routed execution: "this should have gone to X", from the execution page, the admin or the API.

The correction itself (an example for X, a negative for the agent chosen) is
``routing.corrections``; this adds what only the executions layer knows: the
run's query and the agent the router chose, and who may say so.
"""

from django.core.exceptions import PermissionDenied, ValidationError

from executions.models import Execution
from routing.corrections import routing_correct
from routing.decisions import query_text
from routing.models import AgentConfig, RoutingCorrection

CORRECT_ROUTING = "routing.add_routingcorrection"


def may_correct(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(CORRECT_ROUTING))


def correctable(execution: Execution) -> bool:
    """Whether the router chose this run's agent (a task that named its agent had no decision to correct)."""
    return bool(execution.routing) and bool(query_text(execution.task.input_data))


def execution_correct_routing(*, execution: Execution, agent: AgentConfig, by, note: str = "") -> RoutingCorrection:
    """Record that ``execution`` should have been routed to ``agent``; it counts for the next task at once."""
    if not may_correct(by):
        raise PermissionDenied(f"Correcting the router needs the {CORRECT_ROUTING} permission (operators have it).")
    if not execution.routing:
        raise ValidationError(
            {"agent": f"Execution {execution.pk} was not routed: its task named {execution.agent.name}."}
        )
    query = query_text(execution.task.input_data)
    if not query:
        raise ValidationError({"agent": f"Execution {execution.pk}'s input has no query text to learn from."})
    return routing_correct(
        query=query, correct=agent, chosen=execution.agent, execution_id=execution.pk, by=by, note=note
    )


def corrections_of(execution: Execution) -> list[RoutingCorrection]:
    return list(RoutingCorrection.objects.filter(execution_id=execution.pk).select_related("correct", "created_by"))
