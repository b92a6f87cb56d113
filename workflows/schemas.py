"""The JSON API's shapes for workflow definitions, runs and their steps (ninja ``Schema``s)."""

from datetime import datetime
from typing import Annotated, Any

from django.urls import reverse
from ninja import Field, Schema

from executions.schemas import ObjectIn
from workflows import selectors
from workflows.engine import spec_of, step_outcome
from workflows.models import StepRun, WorkflowDefinition, WorkflowRun, WorkflowStatus, WorkflowVersion
from workflows.spec import NAME_MAX_CHARS, StepSpec

NOT_STARTED = "NOT_STARTED"
COMMENT_MAX_CHARS = 2000  # as the page's decision form
StepId = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[a-z][a-z0-9_-]*$", examples=["review"])]

SPEC_EXAMPLE = (
    "name: summarise\nsteps:\n  - id: summary\n    agent: text-statistics\n    input: {text: '{{ input.text }}'}\n"
    "  - id: review\n    depends_on: [summary]\n    approval: {message: Publish?}\n"
)


def _username(user) -> str | None:
    return user.get_username() if user is not None else None


class VersionOut(Schema):
    number: int
    created_by: str | None
    created_at: datetime

    @classmethod
    def of(cls, version: WorkflowVersion) -> "VersionOut":
        return cls(number=version.number, created_by=_username(version.created_by), created_at=version.created_at)


class DefinitionSummary(Schema):
    name: str
    description: str
    latest_version: int | None = Field(None, description="The version a start uses; null before the first.")
    created_at: datetime


class DefinitionOut(DefinitionSummary):
    created_by: str | None
    versions: list[VersionOut] = Field(..., description="Newest first.")
    version: int | None = Field(None, description="The version whose spec is shown.")
    spec: dict[str, Any] | None = Field(None, description="That version's definition, in canonical form.")

    @classmethod
    def of(cls, definition: WorkflowDefinition, version: WorkflowVersion | None) -> "DefinitionOut":
        versions = list(definition.versions.select_related("created_by").defer("spec").order_by("-number"))
        return cls(
            name=definition.name,
            description=definition.description,
            latest_version=versions[0].number if versions else None,
            created_at=definition.created_at,
            created_by=_username(definition.created_by),
            versions=[VersionOut.of(v) for v in versions],
            version=version.number if version is not None else None,
            spec=version.spec if version is not None else None,
        )


class DefinitionIn(Schema):
    source: str | dict[str, Any] = Field(
        ...,
        description="The definition as JSON or YAML text, or as an object. Saving the same spec again adds no version.",
        examples=[SPEC_EXAMPLE],
    )


class RunStartIn(Schema):
    definition: str = Field(..., min_length=1, max_length=NAME_MAX_CHARS, examples=["summarise"])
    input: Any = Field(None, description="The run's input (any JSON), read by its steps as `input`.")
    name: str | None = Field(None, min_length=1, max_length=200, description="Default: the definition's name.")


class DecisionIn(ObjectIn):
    comment: str = Field("", max_length=COMMENT_MAX_CHARS, examples=["Looks good"])


class RerunIn(Schema):
    from_step: StepId
    input: Any = Field(None, description="A new input for the run; omit to keep its input.")


class RunSummary(Schema):
    id: int
    name: str
    definition: str | None = Field(None, description="Null for a plain workflow of added tasks.")
    version: int | None
    status: WorkflowStatus
    steps_ended: int
    created_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    url: str = Field(..., description="The run's live page.")

    @classmethod
    def fields_of(cls, run: WorkflowRun) -> dict:
        version = run.version if run.version_id else None
        return {
            "id": run.pk,
            "name": run.name,
            "definition": version.definition.name if version is not None else None,
            "version": version.number if version is not None else None,
            "status": run.status,
            "steps_ended": run.steps_ended,
            "created_by": _username(run.created_by),
            "created_at": run.created_at,
            "started_at": run.started_at,
            "finished_at": run.finished_at,
            "url": reverse("workflows:run", kwargs={"run_id": run.pk}),
        }


class StepRunOut(Schema):
    """One run of a step: the step itself, an item of a map (``index`` from 1) or an iteration of a loop."""

    index: int
    iteration: int
    state: str
    execution_id: int | None
    output: Any
    error: Any
    decided_by: str | None
    comment: str
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: StepRun) -> "StepRunOut":
        return cls(
            index=row.index,
            iteration=row.iteration,
            state=row.state,
            execution_id=row.execution_id,
            output=row.output,
            error=row.error,
            decided_by=_username(row.decided_by),
            comment=row.comment,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )


class ApprovalOut(Schema):
    message: str
    approvers: list[str]
    group: str | None


class StepOut(Schema):
    id: str
    kind: str = Field(..., description='"agent", "route", "approval", or "task" in a plain workflow.')
    agent: str | None
    depends_on: list[str]
    state: str = Field(..., description="NOT_STARTED, or the step's state (RUNNING, WAITING, COMPLETED...).")
    output: Any = Field(None, description="What later steps read as steps.<id>.output (a map's: every item's).")
    approval: ApprovalOut | None = None
    runs: list[StepRunOut]

    @classmethod
    def of(cls, step: StepSpec | None, step_id: str, rows: list[StepRun]) -> "StepOut":
        if step is None:  # a plain workflow's task: its one row says it all
            state, output = (rows[-1].state, rows[-1].output) if rows else (None, None)
            return cls(id=step_id, kind="task", agent=None, depends_on=[], state=state or NOT_STARTED,
                       output=output, runs=[StepRunOut.of(row) for row in rows])  # fmt: skip
        state, output = step_outcome(step, rows)
        approval = step.approval
        return cls(
            id=step_id,
            kind=step.kind,
            agent=step.agent,
            depends_on=list(step.depends_on),
            state=state or NOT_STARTED,
            output=output,
            approval=ApprovalOut(message=approval.message, approvers=list(approval.approvers), group=approval.group)
            if approval
            else None,
            runs=[StepRunOut.of(row) for row in rows],
        )


class RunOut(RunSummary):
    description: str
    input: Any
    output: Any
    error: Any
    metadata: dict[str, Any]
    steps: list[StepOut] = Field(..., description="In dependency order, those not started yet included.")

    @classmethod
    def of(cls, run: WorkflowRun) -> "RunOut":
        rows = selectors.run_step_rows(run_id=run.pk)
        if run.version_id is None:
            steps = [StepOut.of(None, step_id, step_rows) for step_id, step_rows in rows.items()]
        else:
            spec = spec_of(run)
            steps = [
                StepOut.of(spec.step(step_id), step_id, rows.get(step_id, [])) for step_id in spec.topological_order()
            ]
        return cls(
            **cls.fields_of(run),
            description=run.description,
            input=run.input,
            output=run.output,
            error=run.error,
            metadata=run.metadata,
            steps=steps,
        )


class RunPage(Schema):
    items: list[RunSummary]
    next: str | None = Field(None, description="The URL of the next (older) page; null on the last.")


class DecisionOut(Schema):
    run: int
    step: str
    approved: bool
    status: WorkflowStatus = Field(..., description="The run's status after the decision.")
