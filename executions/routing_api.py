"""The JSON API's routing: which agent the router would choose for a task and why, and corrections.

Here rather than in ``routing.api`` because the router's loads and history come
from the executions layer (``executions.agent_activity.task_router``); nothing
is run and nothing is written (round robin's rotation included).
"""

from datetime import datetime
from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Path, Router, Schema, Status

from executions import access, routing_corrections
from executions.agent_activity import task_router
from executions.ids import ID_MAX
from executions.models import Execution
from executions.schemas import ObjectIn
from executions.validation import DESCRIPTION_MAX_CHARS, NAME_MAX_CHARS, TAG_MAX_CHARS, SubmitError
from routing.decisions import NO_INPUT, RouteRequest, RoutingStrategy, query_text
from routing.models import AgentConfig, RoutingCorrection

router = Router(tags=["routing"])

Tag = Annotated[str, Field(min_length=1, max_length=TAG_MAX_CHARS)]
ExecutionId = Path(..., ge=1, le=ID_MAX)


class RouteIn(ObjectIn):
    """A task as the router sees it: its query (``query``, else read from ``input`` as a submit reads it),
    tags for capability matching, and its name and description for content matching."""

    input: Any = Field(
        None,
        description="A task input: its query is what is matched, and agents whose input schema refuses it "
        "are passed over.",
        examples=[{"query": "tl;dr"}],
    )
    query: str | None = Field(None, max_length=100_000, description="The query itself, instead of an input.")
    tags: list[Tag] = Field(default_factory=list, max_length=100, examples=[["summarise"]])
    name: str = Field("", max_length=NAME_MAX_CHARS)
    description: str = Field("", max_length=DESCRIPTION_MAX_CHARS)
    strategy: RoutingStrategy | None = Field(None, description="Default: the site's SYMPHONY_ROUTING_STRATEGY.")


class CandidateOut(Schema):
    agent: str
    agent_id: int
    score: float
    running: int
    queued: int
    capacity: int | None = Field(None, description="Its max_concurrency; null: no limit.")
    saturated: bool
    note: str = Field(..., description="Why it scored as it did.")


class RoutingDecisionOut(Schema):
    strategy: RoutingStrategy
    chosen: str | None = Field(None, description="The agent it would run on; null when none fits.")
    chosen_id: int | None
    reason: str
    candidates: list[CandidateOut] = Field(..., description="Every enabled agent it considered, with its score.")


@router.post("/routing/decide", response=RoutingDecisionOut, summary="Show how a task would be routed")
def routing_decide(request: HttpRequest, body: RouteIn):
    """The router's decision for the task, with every candidate's score, load and note, without
    running or recording anything (``manage.py symphony route`` in the API). ``chosen`` is null
    when no agent fits: a submit of that task would be refused with ``reason``."""
    task = RouteRequest(
        query=body.query if body.query is not None else query_text(body.input),
        tags=tuple(body.tags),
        name=body.name,
        description=body.description,
        input=NO_INPUT if body.input is None else body.input,
    )
    return task_router().decide(task, strategy=body.strategy, dry_run=True).as_dict()


class CorrectionIn(ObjectIn):
    agent: str = Field(..., min_length=1, max_length=100, description="The agent the task should have gone to.")
    note: str = Field("", max_length=500, description="Why, for the record.")


class CorrectionOut(Schema):
    id: int
    execution_id: int | None
    query: str
    chosen: str | None = Field(None, description="The agent the router chose: the query is now a negative for it.")
    correct: str = Field(..., description="The agent it should have gone to: the query is now an example for it.")
    note: str
    created_by: str | None
    created_at: datetime

    @staticmethod
    def of(correction: RoutingCorrection) -> "CorrectionOut":
        return CorrectionOut(
            id=correction.pk,
            execution_id=correction.execution_id,
            query=correction.query,
            chosen=correction.chosen.name if correction.chosen_id else None,
            correct=correction.correct.name,
            note=correction.note,
            created_by=correction.created_by.get_username() if correction.created_by_id else None,
            created_at=correction.created_at,
        )


@router.post(
    "/executions/{execution_id}/correct-routing",
    response={201: CorrectionOut},
    summary="Say which agent a routed run should have gone to",
)
def execution_correct_routing(request: HttpRequest, body: CorrectionIn, execution_id: int = ExecutionId):
    """Teach the router: the run's query becomes an example for ``agent`` and a negative for the agent
    it chose, for the next task on every worker. Needs ``routing.add_routingcorrection`` (operators have
    it); 422 when the run was not routed (its task named its agent) or names the agent it already ran on."""
    execution = access.execution_for(request.user, execution_id, Execution.objects.select_related("task", "agent"))
    agent = AgentConfig.objects.filter(name=body.agent).first()
    if agent is None:
        raise SubmitError(f"No agent called {body.agent!r}.", field="agent")
    correction = routing_corrections.execution_correct_routing(
        execution=execution, agent=agent, by=request.user, note=body.note
    )
    return Status(201, CorrectionOut.of(correction))
