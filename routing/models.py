from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models

from routing.input_schemas import validate_input_schema
from routing.kinds.validation import validate_kind_settings


class AgentKind(models.TextChoices):
    PYTHON = "python", "Python callable"
    LLM = "llm", "OpenAI-compatible model endpoint"
    HTTP = "http", "HTTP service"


class AgentConfig(models.Model):
    """What an agent can do and how it runs.

    ``settings`` holds the kind's own options (for ``python``: ``{"path": "pkg.mod.callable"}``
    plus anything the callable reads). Secrets never live here: a config names the
    environment variable that holds a key.
    """

    name = models.SlugField(max_length=100, unique=True)
    role = models.CharField(max_length=200, blank=True)
    description = models.TextField(blank=True)
    instruction_template = models.TextField(blank=True)
    kind = models.CharField(max_length=20, choices=AgentKind.choices, default=AgentKind.PYTHON)
    settings = models.JSONField(default=dict, blank=True)
    secret_env = models.CharField(
        max_length=100,
        blank=True,
        help_text="Name of the environment variable holding this agent's API key; the key itself is never stored.",
    )
    capabilities = models.JSONField(default=list, blank=True, help_text='List of {"name": ..., "expertise": [tags]}.')
    example_tasks = models.JSONField(default=list, blank=True)
    input_schema = models.JSONField(
        null=True,
        blank=True,
        default=None,
        validators=[validate_input_schema],
        help_text="A JSON Schema (Draft 2020-12) the task input must fit; a submit that does not fit is refused "
        "and the router passes this agent over. Empty: any input.",
    )
    max_concurrency = models.PositiveIntegerField(
        default=0, help_text="Most RUNNING executions at once across all workers; 0 means no limit."
    )
    default_timeout = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.1)], help_text="Seconds; empty for the site default."
    )
    enabled = models.BooleanField(default=True)
    last_routed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When round robin last chose this agent."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        super().clean()
        try:
            validate_kind_settings(self.kind, self.settings, secret_env=self.secret_env)
        except ValidationError as exc:
            # Raised as form-wide errors (each message names its field): a form that lacks the
            # field, like the admin list's "enabled" checkboxes, would crash on field-keyed ones.
            raise ValidationError(exc.messages) from None


class TextVector(models.Model):
    """A text's embedding, computed once and kept: content-addressed by the model and the text's SHA-256.

    Every text the semantic router compares a task with (profiles, examples, history,
    corrections) is embedded once, by whichever process needs it first, and read back
    by every other process; a changed text is a new digest, so nothing goes stale.
    """

    model = models.CharField(max_length=100)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the text, hex.")
    vector = models.BinaryField(help_text="float32, little-endian.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["model", "digest"], name="text_vector_unique")]

    def __str__(self) -> str:
        return f"{self.model}:{self.digest[:12]}"


class RoutingCorrection(models.Model):
    """An operator's "this task should have gone to X": an example for X, a negative for the agent chosen.

    The router reads corrections on every decision, so one counts for the next task on
    every worker. ``execution_id`` is the corrected run (a plain id: routing sits below
    executions); its completion no longer counts as history for the agent that ran it.
    """

    query = models.TextField(help_text="The task's query, as the router matched it.")
    execution_id = models.BigIntegerField(null=True, blank=True)
    chosen = models.ForeignKey(
        AgentConfig,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="corrections_away",
        help_text="The agent the router chose; the query becomes a negative example for it.",
    )
    correct = models.ForeignKey(
        AgentConfig,
        on_delete=models.CASCADE,
        related_name="corrections_to",
        help_text="The agent that should have taken the task; the query becomes an example for it.",
    )
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["execution_id"],
                condition=models.Q(execution_id__isnull=False),
                name="one_routing_correction_per_execution",
            )
        ]

    def __str__(self) -> str:
        instead = f" (not {self.chosen.name})" if self.chosen_id else ""
        return f"{self.query[:60]!r} goes to {self.correct.name}{instead}"
