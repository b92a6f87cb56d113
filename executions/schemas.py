"""The JSON API's shapes for tasks, executions and their events (ninja ``Schema``s).

Limits come from the same settings the services enforce, so the OpenAPI schema
tells a client what will be refused before it asks.
"""

from datetime import UTC, datetime
from typing import Annotated, Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone
from ninja import Field, Schema
from pydantic import AfterValidator, BaseModel, BeforeValidator, Strict, model_validator

from executions.ids import ID_MAX
from executions.models import EventKind, Execution, ExecutionEvent, ExecutionState, Task
from executions.storable import storable_text
from executions.validation import DESCRIPTION_MAX_CHARS, NAME_MAX_CHARS, TAG_MAX_CHARS
from routing.decisions import RoutingStrategy

# Numbers in a body are strict: pydantic would otherwise read ``true`` as 1 and ``"5"`` as 5,
# which the schema does not allow and a client would not mean.
Tag = Annotated[str, Field(min_length=1, max_length=TAG_MAX_CHARS)]
Priority = Annotated[int, Strict(), Field(ge=settings.SYMPHONY_MIN_PRIORITY, le=settings.SYMPHONY_MAX_PRIORITY)]
Timeout = Annotated[float, Strict(), Field(gt=0, le=settings.SYMPHONY_MAX_TIMEOUT, description="Seconds.")]
MaxAttempts = Annotated[int, Strict(), Field(ge=1, le=settings.SYMPHONY_MAX_ATTEMPTS_LIMIT)]
Id = Annotated[int, Strict(), Field(ge=1, le=ID_MAX)]


def _not_a_number(value: Any) -> Any:
    # pydantic reads "1700000000" or "0.5" as seconds since 1970; the schema says RFC 3339.
    try:
        float(value)
    except (TypeError, ValueError):
        return value
    raise ValueError("expected a date and time such as 2026-01-31T12:00:00Z, not a number")


def _in_utc(value: datetime) -> datetime:
    # PostgreSQL refuses an offset past 15:59 ("-18:28" is valid RFC 3339), so the database gets UTC;
    # a naive time is read in the site's zone.
    try:
        if timezone.is_naive(value):
            value = timezone.make_aware(value, timezone.get_default_timezone())
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00+01:00 is in the year 0
        raise ValueError("the date and time is out of range") from None


DateTime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_in_utc)]
# Text to look something up by: NUL is read as U+FFFD, as it was stored (PostgreSQL refuses NUL in a query).
LookupText = Annotated[str, AfterValidator(lambda text: storable_text(text)[0])]


class ObjectIn(BaseModel):
    """A request body: a JSON object and nothing else.

    A plain pydantic model rather than a ninja ``Schema``: a ``Schema`` reads its fields
    from any object (it is made for ORM rows), so an array, a number or a string would
    pass as a body with every field left at its default.
    """

    @model_validator(mode="before")
    @classmethod
    def _an_object(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            raise ValueError(f"the body must be a JSON object, not {_json_type(value)}")
        return value


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array"}
    return names.get(type(value), type(value).__name__)


class SubmitIn(ObjectIn):
    """A task to run: name an agent, or leave it out to let the router choose."""

    agent: LookupText | None = Field(
        None, max_length=100, description="Agent name; omit to route.", examples=["text-stats"]
    )
    task_id: Id | None = Field(None, description="Run an existing task instead of a new one.")
    input: Any = Field(None, description="The task's input (any JSON).", examples=[{"query": "Summarise this"}])
    name: str | None = Field(None, min_length=1, max_length=NAME_MAX_CHARS)
    tags: list[Tag] = Field(default_factory=list, max_length=100, description="For capability matching.")
    strategy: RoutingStrategy | None = Field(None, description="Routing strategy when no agent is named.")
    priority: Priority | None = None
    timeout: Timeout | None = None
    max_attempts: MaxAttempts | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ExecutionRerunIn(ObjectIn):
    input: Any = Field(None, description="A new input for the new run; omit to reuse the old task.")


class TaskIn(ObjectIn):
    name: str = Field(..., min_length=1, max_length=NAME_MAX_CHARS, examples=["Translate greeting"])
    description: str = Field("", max_length=DESCRIPTION_MAX_CHARS)
    input: Any = Field(None, examples=[{"query": "Translate 'hello' to French"}])
    tags: list[Tag] = Field(default_factory=list, max_length=100)
    agent: LookupText | None = Field(None, max_length=100, description="Agent to run it with; omit to route.")
    routing_strategy: RoutingStrategy | None = None
    priority: Priority = 0


class TaskOut(Schema):
    id: int
    name: str
    description: str
    input: Any
    tags: list[str]
    agent: str | None
    routing_strategy: str
    priority: int
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, task: Task) -> "TaskOut":
        return cls(
            id=task.pk,
            name=task.name,
            description=task.description,
            input=task.input_data,
            tags=task.tags,
            agent=task.agent.name if task.agent_id else None,
            routing_strategy=task.routing_strategy,
            priority=task.priority,
            created_by=task.created_by.get_username() if task.created_by_id else None,
            created_at=task.created_at,
        )


class ExecutionSummary(Schema):
    id: int
    task_id: int
    name: str
    agent: str
    state: ExecutionState
    priority: int
    attempt: int
    max_attempts: int
    progress: float
    current_step: str
    submitted_by: str | None
    rerun_of: int | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str = Field(..., description="The execution's live page.")

    @classmethod
    def fields_of(cls, execution: Execution) -> dict:
        return {
            "id": execution.pk,
            "task_id": execution.task_id,
            "name": execution.task.name,
            "agent": execution.agent.name,
            "state": execution.state,
            "priority": execution.priority,
            "attempt": execution.attempt,
            "max_attempts": execution.max_attempts,
            "progress": execution.progress,
            "current_step": execution.current_step,
            "submitted_by": execution.submitted_by.get_username() if execution.submitted_by_id else None,
            "rerun_of": execution.rerun_of_id,
            "created_at": execution.created_at,
            "started_at": execution.started_at,
            "finished_at": execution.finished_at,
            "url": reverse("executions:detail", kwargs={"execution_id": execution.pk}),
        }

    @classmethod
    def of(cls, execution: Execution) -> "ExecutionSummary":
        return cls(**cls.fields_of(execution))


class ExecutionOut(ExecutionSummary):
    input: Any
    tags: list[str]
    timeout_seconds: float
    result: Any
    error: Any
    usage: dict[str, Any]
    metadata: dict[str, Any]
    routing: dict[str, Any] | None = Field(None, description="How the agent was chosen, when the router chose.")

    @classmethod
    def of(cls, execution: Execution) -> "ExecutionOut":
        return cls(
            **cls.fields_of(execution),
            input=execution.task.input_data,
            tags=execution.task.tags,
            timeout_seconds=execution.timeout_seconds,
            result=execution.result,
            error=execution.error,
            usage=execution.usage,
            metadata=execution.metadata,
            routing=execution.routing,
        )


class ExecutionPage(Schema):
    items: list[ExecutionSummary]
    next: str | None = Field(None, description="The URL of the next (older) page; null on the last.")


class EventOut(Schema):
    id: int
    execution: int
    kind: EventKind
    from_state: ExecutionState | None
    to_state: ExecutionState | None
    data: Any
    actor: int | None = Field(None, description="The user who did it, when a person did.")
    at: datetime

    @classmethod
    def of(cls, event: ExecutionEvent) -> "EventOut":
        return cls(**event.as_message())
