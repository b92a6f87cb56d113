"""Writes to agent configs."""

from routing.agents.demo import DEMO_AGENTS
from routing.models import AgentConfig


def agent_config_upsert(*, name: str, **fields) -> AgentConfig:
    config, _ = AgentConfig.objects.update_or_create(name=name, defaults=fields)
    return config


def demo_agents_load() -> list[AgentConfig]:
    """Create or refresh the built-in demo agents; idempotent."""
    return [agent_config_upsert(**dict(spec)) for spec in DEMO_AGENTS]
