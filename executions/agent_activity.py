"""What the router needs to know from the executions layer: how busy each agent
is, which tasks it has completed, and how a task's latest execution went; a
router wired to all three, and how a submit asks it for an agent."""

from dataclasses import replace

from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber

from executions.models import Execution
from executions.models import ExecutionState as S
from executions.state import ACTIVE, FINISHED
from executions.validation import SubmitError
from routing.decisions import AgentLoad, LatestRun, RouteRequest, RoutingStrategy, query_text
from routing.models import AgentConfig, RoutingCorrection
from routing.router import TaskRouter, strategy_for

# Completed tasks per agent that content matching learns from (most recent first).
HISTORY_LIMIT = 50


def agent_loads(agent_ids: list[int]) -> dict[int, AgentLoad]:
    """Running (PREPARING or RUNNING) and QUEUED executions per agent, from the database: right across workers."""
    rows = AgentConfig.objects.filter(pk__in=agent_ids).annotate(
        running=Count("executions", filter=Q(executions__state__in=ACTIVE)),
        queued=Count("executions", filter=Q(executions__state=S.QUEUED)),
    )
    return {
        row.pk: AgentLoad(running=row.running, queued=row.queued, capacity=row.max_concurrency or None) for row in rows
    }


def agent_histories(agent_ids: list[int], limit: int = HISTORY_LIMIT) -> dict[int, list[str]]:
    """The queries of the tasks each agent completed, most recent first: one query for all agents."""
    history: dict[int, list[str]] = {agent_id: [] for agent_id in agent_ids}
    rows = (
        Execution.objects.filter(agent_id__in=agent_ids, state=S.COMPLETED)
        # A run an operator said should have gone elsewhere teaches its agent nothing.
        .exclude(pk__in=RoutingCorrection.objects.filter(execution_id__isnull=False).values("execution_id"))
        .annotate(
            rank=Window(RowNumber(), partition_by=F("agent_id"), order_by=[F("finished_at").desc(), F("id").desc()])
        )
        .filter(rank__lte=limit)
        .order_by("agent_id", "rank")
        .values_list("agent_id", "task__input_data")
    )
    for agent_id, input_data in rows:
        text = query_text(input_data)
        if text:
            history[agent_id].append(text)
    return history


def task_latest_run(task_id: int) -> LatestRun | None:
    """The task's latest execution (the highest id: executions are created in order), or None if it has none."""
    row = Execution.objects.filter(task_id=task_id).order_by("-id").values("pk", "agent_id", "state").first()
    if row is None:
        return None
    return LatestRun(row["pk"], row["agent_id"], row["state"], finished=row["state"] in FINISHED)


def task_router(strategy: str | None = None, *, custom=None) -> TaskRouter:
    return TaskRouter(strategy, custom=custom, loads=agent_loads, history=agent_histories, latest_run=task_latest_run)


def prepare_routing(strategy: str | None, task=None) -> None:
    """Before a submit's transaction: let content match embed what it will compare with (``TaskRouter.prepare``)."""
    try:
        by_content = strategy_for(strategy=strategy, task=task) == RoutingStrategy.CONTENT_MATCH
    except ValueError:  # an unknown strategy: refused with its message when the task is routed
        return
    if by_content:
        task_router().prepare()


def route_submitted(task, strategy: str | None, *, named: bool = True) -> tuple[AgentConfig, dict]:
    """The agent for a task being submitted, and the decision to store; ``SubmitError`` when none fits.

    An unnamed task is matched without its placeholder name ("task"): it says nothing about the work.
    """
    what = task if named else replace(RouteRequest.for_task(task), name="")
    try:
        decision = task_router().decide(what, strategy=strategy or task.routing_strategy or None)
    except ValueError as exc:  # an unknown strategy name
        raise SubmitError(str(exc)) from exc
    if decision.chosen is None:
        raise SubmitError(f"No suitable agent: {decision.reason}.")
    return decision.chosen, decision.as_dict()
