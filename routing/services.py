"""Writes to agent configs: the admin, the API, the demo loader and the seed's factory all come here."""

import logging

from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.text import capfirst

from routing.agents.demo import DEMO_AGENTS
from routing.kinds.validation import validate_kind_settings
from routing.models import AgentConfig

logger = logging.getLogger(__name__)


def _editable_fields() -> set[str]:
    return {f.name for f in AgentConfig._meta.concrete_fields if f.editable and not f.primary_key}


def _check_known(fields: dict) -> None:
    unknown = sorted(set(fields) - _editable_fields())
    if unknown:
        raise ValidationError({field: f"An agent config has no field {field!r} to set." for field in unknown})


def _validated(config: AgentConfig) -> None:
    """``full_clean``, with the kind-settings problems keyed by their field (``settings``, ``secret_env``).

    The model reports them form-wide (the admin's list form lacks those fields); a caller
    that set the fields itself, like the API, is told which field each problem is about.
    """
    try:
        config.full_clean()
    except ValidationError as exc:
        errors = {field: list(messages) for field, messages in exc.message_dict.items()}
        try:
            validate_kind_settings(config.kind, config.settings, secret_env=config.secret_env)
        except ValidationError as kind_problems:
            keyed = kind_problems.message_dict
            said = {message for messages in keyed.values() for message in messages}
            rest = [message for message in errors.pop(NON_FIELD_ERRORS, []) if message not in said]
            for field, messages in keyed.items():
                errors.setdefault(field, []).extend(messages)
            if rest:
                errors[NON_FIELD_ERRORS] = rest
        raise ValidationError(errors) from None


def agent_config_upsert(*, name: str, **fields) -> AgentConfig:
    """Create the agent config called ``name``, or update the ``fields`` given of the existing one.

    Validated as the admin validates a config (``full_clean``: field values, kind
    settings, secret_env); an invalid or unknown field is a ``ValidationError``
    naming it, and nothing is written.
    """
    _check_known(fields)
    with transaction.atomic():
        config = AgentConfig.objects.select_for_update().filter(name=name).first() or AgentConfig(name=name)
        for field, value in fields.items():
            setattr(config, field, value)
        _validated(config)
        config.save()
    return config


def agent_config_create(*, name: str, by=None, **fields) -> AgentConfig:
    """A new agent config; a name already taken is a ``ValidationError`` on ``name``, never an update."""
    _check_known(fields)
    config = AgentConfig(name=name, **fields)
    _validated(config)  # includes the unique check on name
    try:
        with transaction.atomic():
            config.save(force_insert=True)
    except IntegrityError:  # created by someone else between the check and the insert
        raise ValidationError({"name": f"An agent called {name!r} already exists."}) from None
    logger.info("Agent %s created by %s", config.name, _who(by))
    _history(by, config, ADDITION, [{"added": {}}])
    return config


def agent_config_update(*, agent: AgentConfig, by=None, **fields) -> AgentConfig:
    """Change the ``fields`` given of ``agent`` (its name included), validated whole; nothing else changes."""
    _check_known(fields)
    with transaction.atomic():
        config = AgentConfig.objects.select_for_update().get(pk=agent.pk)
        for field, value in fields.items():
            setattr(config, field, value)
        _validated(config)
        config.save()
    logger.info("Agent %s updated by %s: %s", config.name, _who(by), ", ".join(sorted(fields)) or "nothing")
    labels = [capfirst(AgentConfig._meta.get_field(field).verbose_name) for field in sorted(fields)]
    _history(by, config, CHANGE, [{"changed": {"fields": labels}}])
    return config


def agent_config_set_enabled(*, agent: AgentConfig, enabled: bool, by=None) -> AgentConfig:
    """Let the router choose the agent again, or stop it choosing it; executions already queued still run.

    Only the flag is written: a config that stopped validating (a rule added since it was
    saved) can still be taken out of routing.
    """
    AgentConfig.objects.filter(pk=agent.pk).update(enabled=enabled, updated_at=timezone.now())
    agent.refresh_from_db()
    logger.info("Agent %s %s by %s", agent.name, "enabled" if enabled else "disabled", _who(by))
    _history(by, agent, CHANGE, "Enabled." if enabled else "Disabled.")
    return agent


def _history(user, config: AgentConfig, flag: int, message) -> None:
    """Record who changed the agent in Django's admin history (the agent's "History" page), as
    the admin records its own changes; a change by the system (no user) has no entry there."""
    if getattr(user, "pk", None) is None:
        return
    LogEntry.objects.log_actions(user.pk, [config], flag, message, single_object=True)


def _who(user) -> str:
    return getattr(user, "get_username", lambda: None)() or "system"


def demo_agents_load() -> list[AgentConfig]:
    """Create or refresh the built-in demo agents; idempotent."""
    return [agent_config_upsert(**dict(spec)) for spec in DEMO_AGENTS]
