"""The JSON API's shapes for agent configs (ninja ``Schema``s).

An agent's key never passes through here: a config names the environment variable
that holds it (``secret_env``), and its settings are shown with anything secret a
row may hold redacted (``routing.kinds.validation.public_settings``).
"""

from datetime import datetime
from typing import Annotated, Any

from ninja import Field, Schema

from routing.kinds.validation import public_settings
from routing.models import AgentConfig, AgentKind

AgentName = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[-a-zA-Z0-9_]+$", examples=["summariser"])]
Tag = Annotated[str, Field(min_length=1, max_length=100)]
SETTINGS_DOC = (
    'The kind\'s options: python {"path": "pkg.module.callable"}; llm {"base_url", "model", "temperature", '
    '"max_tokens", "request_timeout", "max_retries"}; http {"url", "timeout", "headers"}. Never a key: '
    "name the environment variable that holds it in secret_env."
)
INPUT_SCHEMA_DOC = (
    "A JSON Schema (Draft 2020-12) a task's input must fit: a submit that does not is refused (422, one error per "
    "place) and the router passes the agent over. Null: any input."
)
SECRET_ENV_DOC = "The NAME of the environment variable holding the agent's API key (the key itself is never stored)."


class Capability(Schema):
    name: str = Field(..., min_length=1, max_length=200, examples=["summarisation"])
    expertise: list[Tag] = Field(default_factory=list, max_length=100, examples=[["summarise", "tldr"]])


class AgentFields(Schema):
    """What a caller sets on an agent; every field optional, so a PATCH changes only what it sends."""

    role: str | None = Field(None, max_length=200, examples=["Summariser"])
    description: str | None = Field(None, max_length=10_000)
    instruction_template: str | None = Field(None, max_length=100_000, examples=["You are {name}, a {role}."])
    kind: AgentKind | None = None
    settings: dict[str, Any] | None = Field(
        None, description=SETTINGS_DOC, examples=[{"base_url": "http://localhost:11434/v1", "model": "llama3.2"}]
    )
    secret_env: str | None = Field(None, max_length=100, description=SECRET_ENV_DOC, examples=["OPENAI_API_KEY"])
    capabilities: list[Capability] | None = Field(None, max_length=100)
    example_tasks: list[Annotated[str, Field(max_length=2000)]] | None = Field(None, max_length=100)
    max_concurrency: int | None = Field(None, ge=0, le=1_000_000, description="0: no limit.")
    input_schema: dict[str, Any] | None = Field(
        None,
        description=INPUT_SCHEMA_DOC,
        examples=[{"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}}],
    )
    default_timeout: float | None = Field(None, ge=0.1, description="Seconds; null for the site default.")
    enabled: bool | None = None

    def fields_set(self) -> dict[str, Any]:
        """The fields the request sent, as model values (a null ``default_timeout`` or ``input_schema`` clears it)."""
        sent = self.dict(exclude_unset=True)
        nullable = {"default_timeout", "input_schema"}
        return {name: value for name, value in sent.items() if value is not None or name in nullable}


class AgentIn(AgentFields):
    name: AgentName
    kind: AgentKind = AgentKind.PYTHON


class AgentPatch(AgentFields):
    name: AgentName | None = Field(None, description="A new name for the agent.")


class AgentOut(Schema):
    name: str
    role: str
    description: str
    instruction_template: str
    kind: AgentKind
    settings: dict[str, Any] = Field(..., description="Any secret a stored row holds shows as [redacted].")
    secret_env: str = Field(..., description=SECRET_ENV_DOC)
    capabilities: Any
    example_tasks: Any
    max_concurrency: int
    input_schema: dict[str, Any] | bool | None = Field(None, description=INPUT_SCHEMA_DOC)
    default_timeout: float | None
    enabled: bool
    last_routed_at: datetime | None = Field(None, description="When round robin last chose it.")
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, agent: AgentConfig) -> "AgentOut":
        settings = public_settings(agent.kind, agent.settings)
        return cls(
            name=agent.name,
            role=agent.role,
            description=agent.description,
            instruction_template=agent.instruction_template,
            kind=agent.kind,
            settings=settings if isinstance(settings, dict) else {},
            secret_env=agent.secret_env,
            capabilities=agent.capabilities,
            example_tasks=agent.example_tasks,
            max_concurrency=agent.max_concurrency,
            input_schema=agent.input_schema,
            default_timeout=agent.default_timeout,
            enabled=agent.enabled,
            last_routed_at=agent.last_routed_at,
            created_at=agent.created_at,
            updated_at=agent.updated_at,
        )
