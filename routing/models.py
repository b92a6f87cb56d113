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
