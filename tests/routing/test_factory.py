"""Building agents: a python agent from a dotted path (every wrong path is a clear refusal naming
the wrong part), and any agent with per-call overrides of its settings and system prompt."""

import asyncio
import time

import pytest
from asgiref.sync import async_to_sync

from executions.progress import ProgressTracker
from executions.runner import ExecutionContext
from executions.services import execution_submit
from routing.factory import AgentBuildError, AgentFactory, AsyncAgentFactory
from routing.models import AgentConfig
from tests import agents


def build(path: str):
    return AgentFactory().build(AgentConfig(name="custom", settings={"path": path}))


def test_it_builds_the_callable_the_path_names():
    agent = build("tests.agents.echo")

    assert agent.call is agents.echo


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("echo", "'echo' is not a dotted path like 'package.module.name'."),
        (".echo", "'.echo' is not a dotted path like 'package.module.name'."),
        ("tests.nowhere.echo", "Cannot import 'tests.nowhere': No module named 'tests.nowhere'"),
        ("tests.agents.does_not_exist", "Module 'tests.agents' has no 'does_not_exist'."),
        ("..echo", "Cannot import '.'"),
    ],
)
def test_a_wrong_path_is_refused_with_what_is_wrong(path, message):
    with pytest.raises(AgentBuildError) as refusal:
        build(path)

    assert str(refusal.value).startswith(message)


# Agents built with per-call overrides --------------------------------------------------------


def run_as_the_runner_does(agent, input_data):
    """Call a built agent with a real execution context over a submitted execution."""
    execution = execution_submit(agent=agent.config, input_data=input_data)
    ctx = ExecutionContext(execution, ProgressTracker(execution.pk), deadline=time.monotonic() + 30)
    result = agent.run(input_data, ctx)
    return asyncio.run(result) if agent.is_async else result


@pytest.mark.django_db
def test_an_agent_exposes_its_name_role_system_prompt_and_model(llm_agent, http_agent, make_agent):
    writer = llm_agent()
    agent = AgentFactory().create_agent(writer.pk)

    assert (agent.name, agent.role, agent.model) == ("writer", "technical writer", "fake-model")
    assert agent.system_prompt == "You are {name}, a {role}. Answer briefly."
    assert agent.config == writer and agent.overrides == {}

    service = AgentFactory().create_agent(http_agent().pk)
    assert (service.system_prompt, service.model) == (None, None)
    echo = AgentFactory().create_agent(make_agent("echo").pk)
    assert (echo.system_prompt, echo.model) == ("", None)


@pytest.mark.django_db
def test_overrides_change_the_model_prompt_and_temperature_of_this_agent_only(llm_agent, fake_openai):
    writer = llm_agent()
    agent = AgentFactory().create_agent(
        writer.pk, model="other-model", system_prompt="Be terse, {name}.", temperature=0.3
    )

    assert (agent.model, agent.system_prompt, agent.settings["temperature"]) == (
        "other-model",
        "Be terse, {name}.",
        0.3,
    )
    run_as_the_runner_does(agent, {"query": "What is Symphony?"})

    (request,) = fake_openai.requests
    assert (request.body["model"], request.body["temperature"]) == ("other-model", 0.3)
    assert request.body["messages"][0] == {"role": "system", "content": "Be terse, writer."}
    writer.refresh_from_db()
    assert writer.settings["model"] == "fake-model" and "temperature" not in writer.settings
    assert agent.config.instruction_template == "You are {name}, a {role}. Answer briefly."


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"temperature": 5}, "settings.temperature must be a number at least 0 and at most 2."),
        ({"model": ""}, "settings.model is required"),
        ({"colour": "blue"}, "Unknown setting 'colour' for a llm agent"),
        ({"system_prompt": 42}, "system_prompt must be text, not int."),
        ({"api_key": "sk-do-not-keep-me"}, "api_key: secrets are never stored in settings"),
    ],
)
def test_a_bad_override_is_refused_naming_the_setting(llm_agent, overrides, message):
    with pytest.raises(AgentBuildError, match="Agent 'writer' cannot take these overrides") as refusal:
        AgentFactory().create_agent(llm_agent().pk, **overrides)

    assert message in str(refusal.value)
    assert "sk-do-not-keep-me" not in str(refusal.value)


@pytest.mark.django_db
def test_each_kind_takes_the_overrides_that_mean_something_for_it(http_agent, make_agent):
    with pytest.raises(AgentBuildError, match="a http agent has no system prompt to override"):
        AgentFactory().create_agent(http_agent().pk, system_prompt="Be nice.")
    with pytest.raises(AgentBuildError, match="path is what a python agent runs"):
        AgentFactory().create_agent(make_agent("echo").pk, path="tests.agents.boom")

    echo = AgentFactory().create_agent(make_agent("echo", name="greeter").pk, greeting="hello")
    assert echo.settings == {"path": "tests.agents.echo", "greeting": "hello"}
    assert run_as_the_runner_does(echo, {"query": "hi"}) == {"echo": {"query": "hi"}, "attempt": 1}


@pytest.mark.django_db
def test_the_seeds_factory_creates_agents_and_saves_configs(llm_agent):
    factory = AsyncAgentFactory()
    agent = async_to_sync(factory.create_agent)(llm_agent().pk, model="bigger-model")
    assert agent.model == "bigger-model"

    created = async_to_sync(factory.save_agent_config)(name="summariser", role="Summariser", settings={"path": "x.y"})
    updated = async_to_sync(factory.save_agent_config)(name="summariser", role="Editor")
    assert updated.pk == created.pk
    assert (updated.role, updated.settings) == ("Editor", {"path": "x.y"})

    copy = AgentConfig(name="summariser-2", role="Copy", settings={"path": "x.y"})
    saved = async_to_sync(factory.save_agent_config)(copy, description="made from an instance")
    assert AgentConfig.objects.get(name="summariser-2").description == saved.description == "made from an instance"
