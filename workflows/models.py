"""Workflows: definitions (versioned DAGs of steps), their runs, each step's runs, and the run history.

A run is also the seed's plain "workflow": a named collection of tasks with a
status derived from theirs (``version`` is then empty and each added task is a
step of its own). Run and step state live here, like executions' state, and
change only through ``workflows.services``.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q

from executions.storable import StorableJSONDecoder


class WorkflowStatus(models.TextChoices):
    PENDING = "PENDING"  # created, no step has run yet
    RUNNING = "RUNNING"  # at least one step is running or waiting to
    WAITING = "WAITING"  # an approval step waits for a person
    PAUSED = "PAUSED"  # paused by hand: no new step starts
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


RUN_FINISHED = frozenset({WorkflowStatus.COMPLETED, WorkflowStatus.FAILED, WorkflowStatus.CANCELLED})


class StepState(models.TextChoices):
    PENDING = "PENDING"  # created, its work not yet submitted (a plain workflow's added task)
    RUNNING = "RUNNING"  # its execution is queued or running
    WAITING = "WAITING"  # an approval waiting for a decision
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # its condition was false
    CANCELLED = "CANCELLED"


STEP_ENDED = frozenset({StepState.COMPLETED, StepState.FAILED, StepState.SKIPPED, StepState.CANCELLED})


class WorkflowDefinition(models.Model):
    """A named workflow; what it does is in its versions, the newest of which new runs use."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def latest_version(self) -> "WorkflowVersion | None":
        return self.versions.order_by("-number").first()


class WorkflowVersion(models.Model):
    """One validated, immutable version of a definition; a run keeps the version it started with."""

    definition = models.ForeignKey(WorkflowDefinition, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    spec = models.JSONField(decoder=StorableJSONDecoder, help_text="The validated definition (canonical form).")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["definition", "-number"]
        constraints = [models.UniqueConstraint(fields=["definition", "number"], name="workflow_version_unique")]

    def __str__(self) -> str:
        return f"{self.definition.name} v{self.number}"


class WorkflowRun(models.Model):
    """One run of a definition version, or a plain workflow of added tasks (no version)."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    metadata = models.JSONField(decoder=StorableJSONDecoder, default=dict, blank=True)
    version = models.ForeignKey(WorkflowVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="runs")
    input = models.JSONField(decoder=StorableJSONDecoder, default=dict, blank=True)
    output = models.JSONField(decoder=StorableJSONDecoder, null=True, blank=True)
    status = models.CharField(max_length=16, choices=WorkflowStatus.choices, default=WorkflowStatus.PENDING)
    error = models.JSONField(decoder=StorableJSONDecoder, null=True, blank=True)
    steps_ended = models.PositiveIntegerField(
        default=0, help_text="How many of the definition's steps have ended (completed, failed, skipped...)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["status", "-id"], name="workflow_run_status"),
            models.Index(fields=["created_by", "-id"], name="workflow_run_creator"),
        ]
        permissions = [("operate_runs", "Can see and act on every user's workflow runs")]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in RUN_FINISHED


class StepRun(models.Model):
    """One run of one step: an item of a map step, an iteration of a loop, or the step itself.

    A re-run from a failed step supersedes the rows it replaces rather than
    deleting them, so the history stays whole; at most one current row exists
    per step, item and iteration.
    """

    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="steps")
    step_id = models.CharField(max_length=100)
    index = models.PositiveIntegerField(default=0, help_text="The item of a map step (0 otherwise).")
    iteration = models.PositiveIntegerField(default=1, help_text="The iteration of a loop step (1 otherwise).")
    state = models.CharField(max_length=16, choices=StepState.choices, default=StepState.PENDING)
    task = models.ForeignKey("executions.Task", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    execution = models.ForeignKey(
        "executions.Execution", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    output = models.JSONField(decoder=StorableJSONDecoder, null=True, blank=True)
    error = models.JSONField(decoder=StorableJSONDecoder, null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    comment = models.TextField(blank=True)
    superseded = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["execution"], name="step_run_execution"),
            # The run's steps in a state (waiting approvals), and the repair pass's running steps.
            models.Index(fields=["run", "state"], name="step_run_run_state"),
            models.Index(fields=["state"], name="step_run_state", condition=Q(state="RUNNING", superseded=False)),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["run", "step_id", "index", "iteration"],
                condition=Q(superseded=False),
                name="step_run_current_unique",
            )
        ]

    def __str__(self) -> str:
        where = f"[{self.index}]" if self.index else ""
        again = f" #{self.iteration}" if self.iteration > 1 else ""
        return f"{self.step_id}{where}{again} ({self.state})"


class RunEventKind(models.TextChoices):
    STATUS = "status"  # the run's status changed
    STEP = "step"  # a step run changed state
    ACTION = "action"  # someone paused, resumed, cancelled, approved, rejected or re-ran


class RunEvent(models.Model):
    """Append-only history of a run: what changed, when and who did it."""

    id = models.BigAutoField(primary_key=True)
    run = models.ForeignKey(WorkflowRun, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=RunEventKind.choices)
    step_id = models.CharField(max_length=100, blank=True)
    data = models.JSONField(decoder=StorableJSONDecoder, default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["run", "id"], name="run_event_run_id")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.kind} {self.step_id}".rstrip()
