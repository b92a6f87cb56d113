"""Turning an agent config into something the runner can call.

Every kind builds a ``RunnableAgent``: ``run(input_data, ctx)`` returns the
result, or a coroutine for an async agent.

An agent can be built with per-call overrides of its config's settings and
system prompt (``with_overrides``), checked as the config's own settings are.
The config itself is not changed: the overrides travel with an execution in
its metadata under ``AGENT_OVERRIDES_KEY`` and the worker passes them back to
``AgentFactory.build``.
"""

import copy
import inspect
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from routing.kinds.http import HTTPAgent
from routing.kinds.validation import SECRET_ADVICE, SECRET_WORDS, validate_kind_settings
from routing.models import AgentConfig, AgentKind
from routing.services import agent_config_upsert

# The execution metadata key under which an agent's per-call overrides reach the worker.
AGENT_OVERRIDES_KEY = "agent_overrides"
# Overrides that change a config field rather than a setting: the seed's name for it, and the field.
FIELD_OVERRIDES = {"system_prompt": "instruction_template"}
# An http agent sends the task as it is: it has no prompt to override.
PROMPTED_KINDS = frozenset({AgentKind.LLM, AgentKind.PYTHON})


class AgentBuildError(Exception):
    """The config does not describe an agent that can run; retrying will not help."""

    retryable = False


@dataclass(frozen=True)
class RunnableAgent:
    config: AgentConfig
    call: Callable[[Any, Any], Any]
    # What this agent changes of its config for this call (``with_overrides``); the stored config is untouched.
    overrides: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def role(self) -> str:
        return self.config.role

    @property
    def settings(self) -> dict[str, Any]:
        """The kind settings it runs with: the config's, with the overrides applied."""
        changed = {name: value for name, value in self.overrides.items() if name not in FIELD_OVERRIDES}
        return {**(self.config.settings or {}), **changed}

    @property
    def system_prompt(self) -> str | None:
        """The instruction template it runs with; None for a kind that has no prompt."""
        if self.config.kind not in PROMPTED_KINDS:
            return None
        return self.overrides.get("system_prompt", self.config.instruction_template) or ""

    @property
    def model(self) -> str | None:
        """The model an llm agent asks for; None for the other kinds."""
        return self.settings.get("model") if self.config.kind == AgentKind.LLM else None

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.call)

    def run(self, input_data: Any, ctx: Any) -> Any:
        return self.call(input_data, ctx)


def import_dotted(path: str) -> Any:
    """Django's ``import_string``, with a refusal that says which part of the path is wrong."""
    module_path, _, attribute = path.rpartition(".")
    if not module_path:
        raise AgentBuildError(f"{path!r} is not a dotted path like 'package.module.name'.")
    try:
        return import_string(path)
    except ImportError as exc:
        # import_string chains the AttributeError when the module imported but lacks the name.
        if isinstance(exc.__cause__, AttributeError):
            raise AgentBuildError(f"Module {module_path!r} has no {attribute!r}.") from exc
        raise AgentBuildError(f"Cannot import {module_path!r}: {exc}") from exc
    except (TypeError, ValueError) as exc:  # how import_module refuses a relative or empty module name
        raise AgentBuildError(f"Cannot import {module_path!r}: {exc}") from exc


def build_python_agent(config: AgentConfig) -> RunnableAgent:
    """``settings["path"]`` names a callable ``f(input_data, ctx)`` or a class.

    A class is instantiated with the config and must have ``run(input_data, ctx)``.
    """
    path = (config.settings or {}).get("path")
    if not path:
        raise AgentBuildError(f"Agent {config.name!r} of kind 'python' needs settings.path.")
    target = import_dotted(path)
    if inspect.isclass(target):
        try:
            instance = target(config)
        except Exception as exc:
            raise AgentBuildError(f"{path}({config.name!r}) failed: {type(exc).__name__}: {exc}") from exc
        if not callable(getattr(instance, "run", None)):
            raise AgentBuildError(f"{path} has no run(input_data, ctx) method.")
        return RunnableAgent(config, instance.run)
    if not callable(target):
        raise AgentBuildError(f"{path} is not callable.")
    return RunnableAgent(config, target)


def check_kind_settings(config: AgentConfig) -> None:
    """The admin validates on save, but rows written by code or fixtures may not have been."""
    try:
        validate_kind_settings(config.kind, config.settings, secret_env=config.secret_env)
    except ValidationError as exc:
        raise AgentBuildError(f"Agent {config.name!r} is misconfigured: {' '.join(exc.messages)}") from None


def agent_secret(config: AgentConfig) -> str | None:
    """The key named by ``secret_env``, read when the agent is built so a rotated key takes effect at once."""
    if not config.secret_env:
        return None
    value = os.environ.get(config.secret_env, "").strip()
    if not value:
        raise AgentBuildError(
            f"Agent {config.name!r} reads its key from the environment variable {config.secret_env}, "
            "which is not set (or empty) in this worker's environment."
        )
    return value


def preload_kinds() -> None:
    """Import what building every kind needs, for a worker process as it starts: a worker builds
    agents inside the transaction that claims their executions, and the first ``llm`` build
    would otherwise import openai there (most of a second, holding SQLite's write lock)."""
    import routing.kinds.llm  # noqa: F401


def build_llm_agent(config: AgentConfig) -> RunnableAgent:
    # Imported here: openai takes most of a second to import, and only processes that run
    # an llm agent (workers) should pay for it, not the web process or management commands.
    from routing.kinds.llm import LLMAgent

    check_kind_settings(config)
    return RunnableAgent(config, LLMAgent(config, api_key=agent_secret(config)).run)


def build_http_agent(config: AgentConfig) -> RunnableAgent:
    check_kind_settings(config)
    return RunnableAgent(config, HTTPAgent(config, api_key=agent_secret(config)).run)


def with_overrides(config: AgentConfig, overrides: Mapping[str, Any]) -> AgentConfig:
    """An unsaved copy of ``config`` with ``overrides`` applied: kind settings, and ``system_prompt``.

    Refused (``AgentBuildError``) unless the result is a config that could have been saved.
    """
    if not isinstance(overrides, Mapping):
        raise AgentBuildError(f"Overrides for agent {config.name!r} must be a mapping, not {type(overrides).__name__}.")
    problems = []
    for name in overrides:
        if any(word in str(name).lower() for word in SECRET_WORDS):
            problems.append(f"{name}: {SECRET_ADVICE}.")
    if config.kind == AgentKind.PYTHON and "path" in overrides:
        problems.append("path is what a python agent runs: use another agent config rather than override it.")
    prompt = overrides.get("system_prompt")
    if "system_prompt" in overrides and config.kind not in PROMPTED_KINDS:
        problems.append(f"a {config.kind} agent has no system prompt to override.")
    elif prompt is not None and not isinstance(prompt, str):
        problems.append(f"system_prompt must be text, not {type(prompt).__name__}.")
    if problems:
        raise AgentBuildError(f"Agent {config.name!r} cannot take these overrides: {' '.join(problems)}")
    check_kind_settings(config)
    effective = copy.copy(config)
    effective.settings = {**(config.settings or {})}
    for name, value in overrides.items():
        if name in FIELD_OVERRIDES:
            setattr(effective, FIELD_OVERRIDES[name], value or "")
        else:
            effective.settings[name] = value
    try:
        validate_kind_settings(effective.kind, effective.settings, secret_env=effective.secret_env)
    except ValidationError as exc:
        raise AgentBuildError(f"Agent {config.name!r} cannot take these overrides: {' '.join(exc.messages)}") from None
    return effective


BUILDERS: dict[str, Callable[[AgentConfig], RunnableAgent]] = {
    AgentKind.PYTHON: build_python_agent,
    AgentKind.LLM: build_llm_agent,
    AgentKind.HTTP: build_http_agent,
}


class AgentFactory:
    """Builds runnable agents from their configs (the seed's ``AgentFactory``)."""

    def create_agent(self, agent_config_id: int, **overrides) -> RunnableAgent:
        try:
            config = AgentConfig.objects.get(pk=agent_config_id)
        except AgentConfig.DoesNotExist as exc:
            raise AgentBuildError(f"No agent config with id {agent_config_id}.") from exc
        return self.build(config, overrides=overrides)

    def build(self, config: AgentConfig, overrides: Mapping[str, Any] | None = None) -> RunnableAgent:
        """The agent ``config`` describes, with ``overrides`` (see ``with_overrides``) for this call only."""
        builder = BUILDERS.get(config.kind)
        if builder is None:
            raise AgentBuildError(f"Agent {config.name!r} has unknown kind {config.kind!r}.")
        if not overrides:
            return builder(config)
        built = builder(with_overrides(config, overrides))
        return RunnableAgent(config, built.call, dict(overrides))


class AsyncAgentFactory:
    """The seed's agent factory (``registry.get_agent_factory()``), for async callers."""

    async def create_agent(self, agent_config_id: int, **overrides) -> RunnableAgent:
        """The agent the config describes, with per-call ``overrides`` such as ``model`` or ``system_prompt``."""
        return await sync_to_async(AgentFactory().create_agent)(agent_config_id, **overrides)

    async def save_agent_config(self, config: AgentConfig | None = None, /, **fields) -> AgentConfig:
        """Create or update the agent config called ``name`` (or ``config``'s), validated (``agent_config_upsert``)."""
        if config is not None:
            fields = {**agent_config_fields(config), **fields}
        return await sync_to_async(agent_config_upsert)(**fields)


def agent_config_fields(config: AgentConfig) -> dict[str, Any]:
    """The fields a caller sets on an agent config, as keyword arguments for ``agent_config_upsert``."""
    return {f.name: getattr(config, f.name) for f in config._meta.concrete_fields if f.editable and not f.primary_key}
