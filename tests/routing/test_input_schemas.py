"""An agent's input schema is itself checked when the agent is saved, on every interface."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.urls import reverse

from routing.input_schemas import input_problems
from routing.models import AgentConfig
from routing.services import agent_config_create, agent_config_update

pytestmark = pytest.mark.django_db

NOT_A_SCHEMA = {"type": "objekt"}
SCHEMA = {"type": "object", "required": ["text"]}


def test_a_schema_that_is_not_json_schema_is_refused_at_save():
    with pytest.raises(ValidationError) as refused:
        agent_config_create(name="bad", settings={"path": "tests.agents.echo"}, input_schema=NOT_A_SCHEMA)

    assert list(refused.value.message_dict) == ["input_schema"]
    assert "Not a valid JSON Schema (Draft 2020-12)" in refused.value.message_dict["input_schema"][0]
    assert "at schema.type" in refused.value.message_dict["input_schema"][0]
    assert not AgentConfig.objects.exists()


def test_a_valid_schema_is_kept_and_can_be_cleared():
    agent = agent_config_create(name="good", settings={"path": "tests.agents.echo"}, input_schema=SCHEMA)
    assert AgentConfig.objects.get(pk=agent.pk).input_schema == SCHEMA

    agent_config_update(agent=agent, input_schema=None)

    assert AgentConfig.objects.get(pk=agent.pk).input_schema is None


def test_the_api_refuses_a_bad_schema_and_patches_a_good_one(client, django_user_model):
    editor = django_user_model.objects.create_user("editor")
    editor.user_permissions.add(*Permission.objects.filter(content_type__app_label="routing"))
    client.force_login(editor)
    body = {"name": "api-agent", "settings": {"path": "tests.agents.echo"}, "input_schema": NOT_A_SCHEMA}

    refused = client.post("/api/v1/agents", json.dumps(body), content_type="application/json")
    made = client.post("/api/v1/agents", json.dumps({**body, "input_schema": SCHEMA}), content_type="application/json")
    cleared = client.patch(
        "/api/v1/agents/api-agent", json.dumps({"input_schema": None}), content_type="application/json"
    )

    assert refused.status_code == 422
    assert [error["loc"] for error in refused.json()["errors"]] == [["body", "input_schema"]]
    assert made.status_code == 201 and made.json()["input_schema"] == SCHEMA
    assert cleared.status_code == 200 and cleared.json()["input_schema"] is None


def test_the_admin_form_shows_the_problem_on_the_field(admin_client):
    response = admin_client.post(
        reverse("admin:routing_agentconfig_add"),
        {
            "name": "admin-agent",
            "kind": "python",
            "settings": json.dumps({"path": "tests.agents.echo"}),
            "capabilities": "[]",
            "example_tasks": "[]",
            "input_schema": json.dumps(NOT_A_SCHEMA),
            "max_concurrency": "0",
            "enabled": "on",
        },
    )

    assert response.status_code == 200
    assert "Not a valid JSON Schema" in str(response.context["adminform"].form.errors["input_schema"])
    assert not AgentConfig.objects.exists()


def test_a_reference_that_cannot_be_resolved_is_a_problem_not_a_crash():
    problems = input_problems({"$ref": "https://example.com/never-fetched.json"}, {})
    assert len(problems) == 1 and "cannot be used" in problems[0].message
