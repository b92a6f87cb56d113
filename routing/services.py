"""Writes to agent configs."""

from django.core.exceptions import ValidationError
from django.db import transaction

from routing.agents.demo import DEMO_AGENTS
from routing.models import AgentConfig


def agent_config_upsert(*, name: str, **fields) -> AgentConfig:
    """Create the agent config called ``name``, or update the ``fields`` given of the existing one.

    Validated as the admin validates a config (``full_clean``: field values, kind
    settings, secret_env); an invalid or unknown field is a ``ValidationError``
    naming it, and nothing is written.
    """
    editable = {f.name for f in AgentConfig._meta.concrete_fields if f.editable and not f.primary_key}
    unknown = sorted(set(fields) - editable)
    if unknown:
        raise ValidationError({field: f"An agent config has no field {field!r} to set." for field in unknown})
    with transaction.atomic():
        config = AgentConfig.objects.select_for_update().filter(name=name).first() or AgentConfig(name=name)
        for field, value in fields.items():
            setattr(config, field, value)
        config.full_clean()
        config.save()
    return config


def demo_agents_load() -> list[AgentConfig]:
    """Create or refresh the built-in demo agents; idempotent."""
    return [agent_config_upsert(**dict(spec)) for spec in DEMO_AGENTS]
