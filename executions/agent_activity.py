"""What the router needs to know from the executions layer: how busy each agent
is, which tasks it has completed, and how a task's latest execution went; and a
router wired to all three."""

from django.db.models import Count, F, Q, Window
from django.db.models.functions import RowNumber

from executions.models import Execution
from executions.models import ExecutionState as S
from executions.state import ACTIVE, FINISHED
from routing.decisions import AgentLoad, LatestRun, query_text
from routing.models import AgentConfig, RoutingCorrection
from routing.router import TaskRouter

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
