"""Agent configs are written through one upsert, validated as the admin validates them."""

import pytest
from django.core.exceptions import ValidationError

from routing.models import AgentConfig
from routing.services import agent_config_upsert, demo_agents_load

pytestmark = pytest.mark.django_db

LLM = {"base_url": "http://localhost:11434/v1", "model": "llama3.2"}


def test_it_creates_then_updates_only_the_fields_given():
    created = agent_config_upsert(name="summariser", kind="llm", settings=LLM, role="Summariser")
    updated = agent_config_upsert(name="summariser", role="Editor", max_concurrency=2)

    assert updated.pk == created.pk
    stored = AgentConfig.objects.get(name="summariser")
    assert (stored.role, stored.max_concurrency, stored.settings) == ("Editor", 2, LLM)


def test_invalid_settings_are_refused_and_nothing_is_written():
    agent_config_upsert(name="summariser", kind="llm", settings=LLM)

    with pytest.raises(ValidationError) as refusal:
        agent_config_upsert(name="summariser", settings={**LLM, "temperature": 9})

    assert "settings.temperature must be a number at least 0 and at most 2." in refusal.value.messages
    assert "temperature" not in AgentConfig.objects.get(name="summariser").settings
    with pytest.raises(ValidationError, match="Enter a valid “slug”"):
        agent_config_upsert(name="not a slug", settings={"path": "tests.agents.echo"})
    assert not AgentConfig.objects.filter(name="not a slug").exists()


def test_an_unknown_or_read_only_field_is_named_in_the_refusal():
    with pytest.raises(ValidationError) as refusal:
        agent_config_upsert(name="echo", settings={"path": "tests.agents.echo"}, colour="blue", last_routed_at=None)

    assert set(refusal.value.message_dict) == {"colour", "last_routed_at"}
    assert not AgentConfig.objects.exists()


def test_the_demo_agents_load_twice_as_the_same_rows():
    first = demo_agents_load()
    second = demo_agents_load()

    assert [config.pk for config in first] == [config.pk for config in second]
    assert AgentConfig.objects.count() == len(first)
