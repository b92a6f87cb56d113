from django.conf import settings
from django.db import models

from executions.storable import StorableJSONDecoder


class ExecutionState(models.TextChoices):
    PENDING = "PENDING"
    QUEUED = "QUEUED"
    PREPARING = "PREPARING"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMED_OUT = "TIMED_OUT"


class Task(models.Model):
    """What to do: a named input for an agent. One task may be executed many times."""

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    input_data = models.JSONField(decoder=StorableJSONDecoder, default=dict, blank=True)
    tags = models.JSONField(decoder=StorableJSONDecoder, default=list, blank=True)
    agent = models.ForeignKey(
        "routing.AgentConfig",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="tasks",
        help_text="The agent to run this task with; empty to let the router choose.",
    )
    routing_strategy = models.CharField(
        max_length=20, blank=True, help_text="How to route this task when it names no agent; empty for the default."
    )
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name


class ConcurrencyGroup(models.Model):
    """A set of executions (a batch, a workflow's map step) of which at most ``max_concurrent`` are
    PREPARING or RUNNING at once, across every worker: enforced where work is claimed, like an
    agent's ``max_concurrency``."""

    name = models.CharField(max_length=200, blank=True, help_text='For display, e.g. "batch 12".')
    max_concurrent = models.PositiveIntegerField(default=0, help_text="0 for no limit.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name or f"group {self.pk}"


class Execution(models.Model):
    """One run of a task by an agent, with its lifecycle, progress and outcome.

    ``state`` is written only by ``executions.state.transition``; ``save()`` never writes
    it, and refuses an instance whose state was changed in memory.
    """

    task = models.ForeignKey(Task, on_delete=models.CASCADE, related_name="executions")
    agent = models.ForeignKey("routing.AgentConfig", on_delete=models.PROTECT, related_name="executions")
    state = models.CharField(max_length=16, choices=ExecutionState.choices, default=ExecutionState.QUEUED)
    priority = models.IntegerField(default=0, help_text="Higher runs first.")
    attempt = models.PositiveIntegerField(default=1)
    max_attempts = models.PositiveIntegerField(default=1)
    timeout_seconds = models.FloatField()
    progress = models.FloatField(default=0)
    current_step = models.CharField(max_length=200, blank=True)
    steps = models.JSONField(decoder=StorableJSONDecoder, default=list, blank=True)
    result = models.JSONField(decoder=StorableJSONDecoder, null=True, blank=True)
    error = models.JSONField(decoder=StorableJSONDecoder, null=True, blank=True)
    metadata = models.JSONField(decoder=StorableJSONDecoder, default=dict, blank=True)
    usage = models.JSONField(
        decoder=StorableJSONDecoder, default=dict, blank=True, help_text="Resources the agent reported, e.g. tokens."
    )
    routing = models.JSONField(
        decoder=StorableJSONDecoder,
        null=True,
        blank=True,
        help_text="How the agent was chosen: strategy, candidates with scores, reason.",
    )
    concurrency_group = models.ForeignKey(
        ConcurrencyGroup,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="executions",
        help_text="Runs at most the group's max_concurrent at once with the rest of its group.",
    )
    lease_owner = models.CharField(max_length=200, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    not_before = models.DateTimeField(null=True, blank=True, help_text="Not to be started before this time.")
    queued_at = models.DateTimeField(null=True, blank=True, help_text="When it last entered QUEUED.")
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    rerun_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="reruns",
        help_text="The finished execution this one runs again.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["state", "lease_expires_at"], name="execution_state_lease"),
            models.Index(fields=["state", "-priority", "queued_at"], name="execution_ready"),
            models.Index(fields=["agent", "state"], name="execution_agent_state"),
            models.Index(fields=["concurrency_group", "state"], name="execution_group_state"),
            # Keyset pages of the lists, newest first, filtered by state, agent or submitter.
            models.Index(fields=["state", "-id"], name="execution_state_id"),
            models.Index(fields=["agent", "-id"], name="execution_agent_id"),
            models.Index(fields=["submitted_by", "-id"], name="execution_submitter"),
            # The rollup's bounded range reads (executions.rollup).
            models.Index(fields=["finished_at"], name="execution_finished"),
            # A plain user's per-state counts on the list (listing.state_counts).
            models.Index(fields=["submitted_by", "state", "-id"], name="execution_submitter_state"),
            # ... and by agent: without it 62 ms (SQLite) and 41-59 ms (PostgreSQL) at 1M rows (bench/README.md).
            models.Index(fields=["submitted_by", "agent", "state", "-id"], name="execution_submitter_agent"),
            # The list's date range, turned into an id range (listing.ExecutionFilters).
            models.Index(fields=["created_at"], name="execution_created"),
        ]
        permissions = [("operate_executions", "Can see and act on every user's tasks and executions")]

    def __str__(self) -> str:
        return f"Execution {self.pk} ({self.state})"

    def save(self, *args, **kwargs):
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "state" in update_fields:
            raise ValueError("Execution.state changes only through executions.state.transition().")
        if self._state.adding:
            super().save(*args, **kwargs)
            self._loaded_state = self.state
            return
        if update_fields is not None:
            return super().save(*args, **kwargs)
        loaded = getattr(self, "_loaded_state", None)
        if loaded is not None and self.__dict__.get("state") != loaded:
            raise ValueError(
                f"Execution {self.pk}'s state was changed to {self.state} in memory; "
                "it changes only through executions.state.transition()."
            )
        fields = [f.name for f in self._meta.concrete_fields if not f.primary_key and f.name != "state"]
        return super().save(*args, update_fields=fields, **kwargs)

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        instance._loaded_state = instance.__dict__.get("state")
        return instance

    def refresh_from_db(self, *args, **kwargs):
        super().refresh_from_db(*args, **kwargs)
        self._loaded_state = self.__dict__.get("state")

    def state_written(self, state: str) -> None:
        """Reflect in memory a state that ``transition()`` has just written to the row."""
        self.state = self._loaded_state = state

    @property
    def is_finished(self) -> bool:
        from executions.state import FINISHED

        return self.state in FINISHED


class EventKind(models.TextChoices):
    STATE = "state"
    PROGRESS = "progress"
    LOG = "log"
    OUTPUT = "output"


class ExecutionEvent(models.Model):
    """Append-only: the transition history and the live-event outbox in one table.

    Rows are written in the transaction of the change they describe; ids increase,
    so a client resumes with ``after=<last id seen>`` and misses nothing.
    """

    id = models.BigAutoField(primary_key=True)
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=16, choices=EventKind.choices)
    from_state = models.CharField(max_length=16, blank=True)
    to_state = models.CharField(max_length=16, blank=True)
    data = models.JSONField(decoder=StorableJSONDecoder, default=dict, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Who did it, when a person did (submitted, cancelled, retried...).",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["execution", "id"], name="event_execution_id")]

    def __str__(self) -> str:
        if self.kind == EventKind.STATE:
            return f"#{self.pk} {self.from_state or '∅'} → {self.to_state}"
        return f"#{self.pk} {self.kind}"

    def as_message(self) -> dict:
        """The JSON object streamed to programs over the websocket and the API."""
        return {
            "id": self.pk,
            "execution": self.execution_id,
            "kind": self.kind,
            "from_state": self.from_state or None,
            "to_state": self.to_state or None,
            "data": self.data,
            "actor": self.actor_id,
            "at": self.created_at.isoformat(),
        }


class IdempotencyKey(models.Model):
    """A client's ``Idempotency-Key`` for a submit: the same key from the same user returns
    the first submit's execution instead of making another one.

    The unique constraint decides between concurrent submits with one key: one
    inserts the key and submits, the others wait for its commit and return its
    execution.
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the request body the key was first used with.")
    execution = models.ForeignKey(Execution, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_unique")]

    def __str__(self) -> str:
        return self.key


class ProcessRole(models.TextChoices):
    WORKER = "worker"  # a worker cluster: manage.py symphony worker
    DISPATCHER = "dispatcher"  # manage.py symphony dispatcher


class Heartbeat(models.Model):
    """A long-running process saying it is alive: one row per process, ``beat_at`` moved on as it
    works, deleted when it stops cleanly. The health check reads the ages (``executions.health``)."""

    name = models.CharField(max_length=200, unique=True, help_text="role:host:pid")
    role = models.CharField(max_length=20, choices=ProcessRole.choices)
    host = models.CharField(max_length=200, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)
    process_ids = models.JSONField(
        default=list, blank=True, help_text="Its child processes' ids: a lease owner names the one that runs it."
    )
    started_at = models.DateTimeField(auto_now_add=True)
    beat_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["role", "-beat_at"], name="heartbeat_role_beat")]

    def __str__(self) -> str:
        return self.name


class RollupPeriod(models.IntegerChoices):
    TOTAL = 0, "since the rollup began"
    FIVE_MINUTES = 300, "five minutes"
    HOUR = 3600, "hour"
    SIX_HOURS = 21600, "six hours"


class ExecutionRollup(models.Model):
    """How the executions of one agent that ended in one period went: counts by end state, a
    histogram of run times, and the routing strategies that chose them.

    Written only by ``executions.rollup`` (from the rows, never on the transition path); the
    overview, agents page and ``/metrics`` read these instead of counting a million rows.
    """

    period = models.PositiveIntegerField(choices=RollupPeriod.choices)
    start = models.DateTimeField()
    agent = models.ForeignKey("routing.AgentConfig", on_delete=models.CASCADE, related_name="+")
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    timed_out = models.PositiveIntegerField(default=0)
    ran = models.PositiveIntegerField(default=0, help_text="How many had a run time (they were started).")
    duration_sum = models.FloatField(default=0)
    durations = models.JSONField(default=list, help_text="Counts per bucket of executions.rollup.DURATION_BOUNDS.")
    routed = models.JSONField(default=dict, help_text="Routing strategy -> executions it chose this agent for.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["period", "start", "agent"], name="rollup_period_start_agent")]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.get_period_display()} {self.start:%Y-%m-%d %H:%M}"


class RollupMark(models.Model):
    """How far the rollup has gone: one row per mark (``ended``: rows ended before ``at`` are
    rolled up; ``totals``: hours before ``at`` are folded into the totals)."""

    name = models.CharField(max_length=20, unique=True)
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} {self.at:%Y-%m-%d %H:%M:%S}"
