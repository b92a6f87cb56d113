"""The JSON API for tasks and executions (mounted by ``symphony.api``): thin adapters over
``services``, ``access`` and ``listing``, so the API can do exactly what the pages do."""

from typing import Annotated

from django.http import HttpRequest
from django.urls import reverse
from ninja import Field, Header, Path, Query, Router, Schema, Status
from pydantic import AfterValidator

from executions import access, services
from executions.idempotency import KEY_MAX_CHARS, fingerprint, submit_once
from executions.ids import ID_MAX
from executions.listing import MAX_PAGE_SIZE, PAGE_SIZE, ExecutionFilters, execution_page
from executions.models import Execution, ExecutionEvent, ExecutionState
from executions.schemas import (
    DateTime,
    EventOut,
    ExecutionOut,
    ExecutionPage,
    ExecutionRerunIn,
    LookupText,
    SubmitIn,
    TaskIn,
    TaskOut,
)
from executions.search import MIN_CHARS
from executions.selectors import execution_events_after
from routing.models import AgentConfig

router = Router(tags=["executions"])
EVENTS_LIMIT = 500
ExecutionId = Path(..., ge=1, le=ID_MAX)


def _agent(name: str | None) -> AgentConfig | None:
    if not name:
        return None
    agent = AgentConfig.objects.filter(name=name).first()
    if agent is None:
        raise services.SubmitError(f"No agent called {name!r}.", field="agent")
    return agent


def _detail(request: HttpRequest, execution_id: int) -> Execution:
    executions = Execution.objects.select_related("task", "agent", "submitted_by")
    return access.execution_for(request.user, execution_id, executions)


@router.post("/executions", response={201: ExecutionOut}, summary="Submit a task")
def execution_submit(
    request: HttpRequest,
    body: SubmitIn,
    idempotency_key: str | None = Header(None, alias="Idempotency-Key", min_length=1, max_length=KEY_MAX_CHARS),
):
    """Queue an execution. With an ``Idempotency-Key`` header, a repeat of the same request returns
    the first one's execution (and 201) instead of running it twice; the key with another body is a 422."""
    user = request.user

    def submit() -> Execution:
        return services.execution_submit(
            task=access.task_for(user, body.task_id) if body.task_id else None,
            agent=_agent(body.agent),
            input_data=body.input,
            name=body.name,
            tags=body.tags,
            strategy=body.strategy,
            priority=body.priority,
            timeout=body.timeout,
            max_attempts=body.max_attempts,
            metadata=body.metadata,
            submitted_by=user,
        )

    if idempotency_key is None:
        execution = submit()
    else:
        execution, _ = submit_once(user=user, key=idempotency_key, digest=fingerprint(body.model_dump()), submit=submit)
    # Not read again through _detail: the submitter may see what they submitted, and the row is
    # as the service wrote it (the access check and a join were a third of the API's overhead).
    return Status(201, ExecutionOut.of(execution))


def _searchable(text: str) -> str:
    if 0 < len(text) < MIN_CHARS:
        raise ValueError(f"Search for at least {MIN_CHARS} characters.")
    return text


SearchText = Annotated[LookupText, AfterValidator(_searchable)]


class ListFilters(Schema):
    state: list[ExecutionState] = []
    agent: LookupText = ""
    tag: LookupText = ""
    created_after: DateTime | None = None
    created_before: DateTime | None = None
    q: SearchText = Field(
        "",
        description=f"Text ({MIN_CHARS} characters or more) in the task's name, description or input, or in the error.",
    )
    workflow: int | None = Field(None, ge=1, le=ID_MAX, description="A workflow run's id: the executions of its steps.")
    submitted_by: LookupText = Field("", description="The username of whoever submitted it.")
    before: int | None = Field(None, ge=1, le=ID_MAX, description="The last id seen: older ones follow.")
    limit: int = Field(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)


@router.get("/executions", response=ExecutionPage, summary="List executions", url_name="execution_list")
def execution_list(request: HttpRequest, filters: Query[ListFilters]):
    """Newest first, what you may see, filtered; follow ``next`` for older pages (a keyset cursor:
    a deep page costs what the first does)."""
    chosen = ExecutionFilters(
        states=tuple(filters.state),
        agent=filters.agent,
        tag=filters.tag,
        created_after=filters.created_after,
        created_before=filters.created_before,
        text=filters.q,
        workflow=filters.workflow,
        submitted_by=filters.submitted_by,
    )
    page = execution_page(access.executions_visible_to(request.user), chosen, before=filters.before, size=filters.limit)
    following = None
    if page.next_before is not None:
        query = request.GET.copy()
        query["before"] = page.next_before
        following = f"{reverse('api:execution_list')}?{query.urlencode()}"
    return {"items": [ExecutionOut.fields_of(e) for e in page.items], "next": following}


@router.get("/executions/{execution_id}", response=ExecutionOut, summary="Get an execution")
def execution_get(request: HttpRequest, execution_id: int = ExecutionId):
    return ExecutionOut.of(_detail(request, execution_id))


@router.get("/executions/{execution_id}/events", response=list[EventOut], summary="An execution's events")
def execution_events(
    request: HttpRequest,
    execution_id: int = ExecutionId,
    after: int = Query(0, ge=0, le=ID_MAX),
    limit: int = Query(EVENTS_LIMIT, ge=1, le=EVENTS_LIMIT),
):
    """Its history, progress and log as events, oldest first, with ids above ``after``: poll with the
    last id you saw and miss nothing (the websocket ``/ws/executions/{id}/`` pushes the same objects)."""
    execution = _detail(request, execution_id)
    events: list[ExecutionEvent] = execution_events_after(execution_id=execution.pk, after_id=after, limit=limit)
    return [EventOut.of(event) for event in events]


@router.post("/executions/{execution_id}/cancel", response=ExecutionOut, summary="Cancel an execution")
def execution_cancel(request: HttpRequest, execution_id: int = ExecutionId):
    """A waiting or running execution is CANCELLED at once (a running agent learns it at its next
    heartbeat); a finished one is a 409."""
    services.execution_cancel(execution=_detail(request, execution_id), by=request.user)
    return ExecutionOut.of(_detail(request, execution_id))


@router.post("/executions/{execution_id}/retry", response=ExecutionOut, summary="Retry a failed execution")
def execution_retry(request: HttpRequest, execution_id: int = ExecutionId):
    """A new attempt of a FAILED execution, under the same id; any other state is a 409."""
    services.execution_retry(execution=_detail(request, execution_id), by=request.user)
    return ExecutionOut.of(_detail(request, execution_id))


@router.post("/executions/{execution_id}/rerun", response={201: ExecutionOut}, summary="Run a finished one again")
def execution_rerun(request: HttpRequest, execution_id: int = ExecutionId, body: ExecutionRerunIn | None = None):
    """A new execution of a finished one (any end state), with the same agent and settings and,
    unless ``input`` is given, the same task; it links back with ``rerun_of``."""
    again = services.execution_rerun(
        execution=_detail(request, execution_id), by=request.user, input_data=body.input if body else None
    )
    return Status(201, ExecutionOut.of(_detail(request, again.pk)))


@router.post("/tasks", response={201: TaskOut}, summary="Create a task")
def task_create(request: HttpRequest, body: TaskIn):
    """A task to run later (``POST /executions`` with its ``task_id``), possibly many times."""
    task = services.task_create(
        name=body.name,
        description=body.description,
        input_data=body.input,
        tags=body.tags,
        agent=_agent(body.agent),
        priority=body.priority,
        routing_strategy=body.routing_strategy or "",
        created_by=request.user,
    )
    return Status(201, TaskOut.of(task))


@router.get("/tasks", response=list[TaskOut], summary="List tasks")
def task_list(
    request: HttpRequest,
    before: int | None = Query(None, ge=1, le=ID_MAX),
    limit: int = Query(PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE),
):
    """Newest first; pass the last id seen as ``before`` for older ones."""
    tasks = access.tasks_visible_to(request.user).select_related("agent", "created_by").order_by("-id")
    if before is not None:
        tasks = tasks.filter(id__lt=before)
    return [TaskOut.of(task) for task in tasks[:limit]]


@router.get("/tasks/{task_id}", response=TaskOut, summary="Get a task")
def task_get(request: HttpRequest, task_id: int = Path(..., ge=1, le=ID_MAX)):
    return TaskOut.of(access.task_for(request.user, task_id))
