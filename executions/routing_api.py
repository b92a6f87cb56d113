"""The routing dry run of the JSON API: which agent the router would choose for a task, and why.

Here rather than in ``routing.api`` because the router's loads and history come
from the executions layer (``executions.agent_activity.task_router``); nothing
is run and nothing is written (round robin's rotation included).
"""

from typing import Annotated, Any

from django.http import HttpRequest
from ninja import Field, Router, Schema

from executions.agent_activity import task_router
from executions.schemas import ObjectIn
from executions.validation import DESCRIPTION_MAX_CHARS, NAME_MAX_CHARS, TAG_MAX_CHARS
from routing.decisions import NO_INPUT, RouteRequest, RoutingStrategy, query_text

router = Router(tags=["routing"])

Tag = Annotated[str, Field(min_length=1, max_length=TAG_MAX_CHARS)]


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
