"""Turning an agent config into something the runner can call.

Every kind builds a ``RunnableAgent``: ``run(input_data, ctx)`` returns the
result, or a coroutine for an async agent.
"""

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.utils.module_loading import import_string

from routing.kinds.http import HTTPAgent
from routing.kinds.validation import validate_kind_settings
from routing.models import AgentConfig, AgentKind


class AgentBuildError(Exception):
    """The config does not describe an agent that can run; retrying will not help."""

    retryable = False


@dataclass(frozen=True)
class RunnableAgent:
    config: AgentConfig
    call: Callable[[Any, Any], Any]

    @property
    def name(self) -> str:
        return self.config.name

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


def build_llm_agent(config: AgentConfig) -> RunnableAgent:
    # Imported here: openai takes most of a second to import, and only processes that run
    # an llm agent (workers) should pay for it, not the web process or management commands.
    from routing.kinds.llm import LLMAgent

    check_kind_settings(config)
    return RunnableAgent(config, LLMAgent(config, api_key=agent_secret(config)).run)


def build_http_agent(config: AgentConfig) -> RunnableAgent:
    check_kind_settings(config)
    return RunnableAgent(config, HTTPAgent(config, api_key=agent_secret(config)).run)


BUILDERS: dict[str, Callable[[AgentConfig], RunnableAgent]] = {
    AgentKind.PYTHON: build_python_agent,
    AgentKind.LLM: build_llm_agent,
    AgentKind.HTTP: build_http_agent,
}


class AgentFactory:
    """Builds runnable agents from their configs (the seed's ``AgentFactory``)."""

    def create_agent(self, agent_config_id: int) -> RunnableAgent:
        try:
            config = AgentConfig.objects.get(pk=agent_config_id)
        except AgentConfig.DoesNotExist as exc:
            raise AgentBuildError(f"No agent config with id {agent_config_id}.") from exc
        return self.build(config)

    def build(self, config: AgentConfig) -> RunnableAgent:
        builder = BUILDERS.get(config.kind)
        if builder is None:
            raise AgentBuildError(f"Agent {config.name!r} has unknown kind {config.kind!r}.")
        return builder(config)
