"""The JSON API for workflow definitions and runs (mounted by ``symphony.api``): thin adapters over
``services``, ``selectors`` and ``access``, so the API can do exactly what the pages do.

A run someone else started is reported as missing (404), except to whoever an
approval step of it names: they may decide that step (``access.run_for_decision``).
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from django.urls import reverse
from django.utils import timezone
from ninja import Path, Query, Router, Schema, Status
from ninja.errors import HttpError

from executions.ids import ID_MAX
from executions.validation import SubmitError
from workflows import access, selectors, services
from workflows.models import WorkflowDefinition, WorkflowRun, WorkflowStatus, WorkflowVersion
from workflows.schemas import (
    DecisionIn,
    DecisionOut,
    DefinitionIn,
    DefinitionOut,
    DefinitionSummary,
    RerunIn,
    RunOut,
    RunPage,
    RunStartIn,
    RunSummary,
    StepId,
)

router = Router(tags=["workflows"])
MAX_PAGE_SIZE = 200
RunId = Path(..., ge=1, le=ID_MAX)


def _definition(name: str) -> WorkflowDefinition:
    definition = WorkflowDefinition.objects.select_related("created_by").filter(name=name).first()
    if definition is None:
        raise Http404(f"No workflow definition called {name!r}.")
    return definition


def _run(request: HttpRequest, run_id: int) -> WorkflowRun:
    runs = WorkflowRun.objects.select_related("version__definition", "created_by").defer("version__spec")
    return access.run_for(request.user, run_id, runs)


# Definitions -------------------------------------------------------------------------------


@router.get("/workflows/definitions", response=list[DefinitionSummary], summary="List workflow definitions")
def workflow_definition_list(request: HttpRequest):
    return [
        DefinitionSummary(
            name=definition.name,
            description=definition.description,
            latest_version=definition.latest.number if definition.latest else None,
            created_at=definition.created_at,
        )
        for definition in selectors.definition_list()
    ]


@router.get("/workflows/definitions/{name}", response=DefinitionOut, summary="Get a workflow definition")
def workflow_definition_get(request: HttpRequest, name: str, version: int | None = Query(None, ge=1)):
    """Its versions, and the spec of ``version`` (default: the latest, which a start uses)."""
    definition = _definition(name)
    versions = WorkflowVersion.objects.select_related("created_by").filter(definition=definition)
    shown = versions.filter(number=version).first() if version else versions.order_by("-number").first()
    if version and shown is None:
        raise Http404(f"Workflow {name!r} has no version {version}.")
    return DefinitionOut.of(definition, shown)


@router.post(
    "/workflows/definitions", response={200: DefinitionOut, 201: DefinitionOut}, summary="Save a workflow definition"
)
def workflow_definition_save(request: HttpRequest, body: DefinitionIn):
    """A new definition, or a new version of the one with its name: 201. The same spec as the
    latest version adds nothing: 200. A definition with problems is a 422 listing every one,
    each with its step and field; nothing is stored then."""
    if not access.may_manage_definitions(request.user):
        raise PermissionDenied("Saving workflow definitions needs the add and change workflow definition permissions.")
    asked_at = timezone.now()
    version = services.workflow_definition_save(source=body.source, by=request.user)
    created = version.created_at >= asked_at  # an unchanged spec returns the latest version as it was
    return Status(201 if created else 200, DefinitionOut.of(_definition(version.definition.name), version))


# Runs --------------------------------------------------------------------------------------


class RunFilters(Schema):
    status: WorkflowStatus | None = None
    before: int | None = None
    limit: int = selectors.RUNS_PER_PAGE


@router.get("/workflows/runs", response=RunPage, summary="List workflow runs", url_name="workflow_run_list")
def workflow_run_list(request: HttpRequest, filters: Query[RunFilters]):
    """Newest first, the runs you may see; follow ``next`` for older pages (a keyset cursor)."""
    if not 1 <= filters.limit <= MAX_PAGE_SIZE:
        raise HttpError(422, f"limit must be between 1 and {MAX_PAGE_SIZE}.")
    runs = selectors.run_list(
        status=filters.status, before=filters.before, limit=filters.limit, runs=access.runs_visible_to(request.user)
    )
    following = None
    if len(runs) > filters.limit:
        runs = runs[: filters.limit]
        query = request.GET.copy()
        query["before"] = runs[-1].pk
        following = f"{reverse('api:workflow_run_list')}?{query.urlencode()}"
    return {"items": [RunSummary.fields_of(run) for run in runs], "next": following}


@router.get("/workflows/runs/{run_id}", response=RunOut, summary="Get a workflow run with its steps")
def workflow_run_get(request: HttpRequest, run_id: int = RunId):
    return RunOut.of(_run(request, run_id))


@router.post("/workflows/runs", response={201: RunOut}, summary="Start a workflow run")
def workflow_run_start(request: HttpRequest, body: RunStartIn):
    """A run of the definition's latest version; its steps without dependencies start at once."""
    if not WorkflowDefinition.objects.filter(name=body.definition).exists():
        raise SubmitError(f"No workflow definition called {body.definition!r}.", field="definition")
    run = services.workflow_run_start(definition=body.definition, input=body.input, name=body.name, by=request.user)
    return Status(201, RunOut.of(_run(request, run.pk)))


@router.post("/workflows/runs/{run_id}/pause", response=RunOut, summary="Pause a workflow run")
def workflow_run_pause(request: HttpRequest, run_id: int = RunId):
    """No new step starts; running steps finish. An ended or paused run is a 409."""
    services.workflow_run_pause(run=_run(request, run_id), by=request.user)
    return RunOut.of(_run(request, run_id))


@router.post("/workflows/runs/{run_id}/resume", response=RunOut, summary="Resume a paused workflow run")
def workflow_run_resume(request: HttpRequest, run_id: int = RunId):
    services.workflow_run_resume(run=_run(request, run_id), by=request.user)
    return RunOut.of(_run(request, run_id))


@router.post("/workflows/runs/{run_id}/cancel", response=RunOut, summary="Cancel a workflow run")
def workflow_run_cancel(request: HttpRequest, run_id: int = RunId):
    """Its running steps' executions are cancelled and nothing new starts; an ended run is a 409."""
    services.workflow_run_cancel(run=_run(request, run_id), by=request.user)
    return RunOut.of(_run(request, run_id))


@router.post("/workflows/runs/{run_id}/rerun", response=RunOut, summary="Re-run a workflow run from a step")
def workflow_run_rerun(request: HttpRequest, body: RerunIn, run_id: int = RunId):
    """The step, every step after it and every failed step start afresh in the same run; completed
    steps keep their outputs. Only an ended run re-runs (else 409)."""
    services.workflow_run_rerun(run=_run(request, run_id), from_step=body.from_step, input=body.input, by=request.user)
    return RunOut.of(_run(request, run_id))


def _decide(request: HttpRequest, run_id: int, step_id: str, body: DecisionIn | None, *, approved: bool) -> dict:
    run = access.run_for_decision(request.user, run_id, step_id)
    decide = services.workflow_step_approve if approved else services.workflow_step_reject
    run = decide(run=run, step_id=step_id, by=request.user, comment=body.comment if body else "")
    return {"run": run.pk, "step": step_id, "approved": approved, "status": run.status}


@router.post("/workflows/runs/{run_id}/steps/{step_id}/approve", response=DecisionOut, summary="Approve a step")
def workflow_step_approve(request: HttpRequest, step_id: StepId, body: DecisionIn | None = None, run_id: int = RunId):
    """The step completes and the run goes on. Those the step names (or its group) may decide it
    even when the run is not theirs; a step that names nobody, the run's owner or an operator.
    A step that is not waiting for a decision is a 409."""
    return _decide(request, run_id, step_id, body, approved=True)


@router.post("/workflows/runs/{run_id}/steps/{step_id}/reject", response=DecisionOut, summary="Reject a step")
def workflow_step_reject(request: HttpRequest, step_id: StepId, body: DecisionIn | None = None, run_id: int = RunId):
    """The step fails (with the comment as its error); the run fails unless the step continues on failure."""
    return _decide(request, run_id, step_id, body, approved=False)
