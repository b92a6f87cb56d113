"""Building a python agent from a dotted path: every wrong path is a clear refusal naming the wrong part."""

import pytest

from routing.factory import AgentBuildError, AgentFactory
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
