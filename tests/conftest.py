import os

import pytest
from channels.layers import channel_layers
from django.contrib.auth.models import Group

from executions import consumers, feeds, live
from executions.access import OPERATORS_GROUP
from executions.renders import SharedRenders
from executions.runner import ExecutionRunner
from routing.models import AgentConfig
from routing.services import demo_agents_load

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true nothing may skip: a skip there is a failure."""
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under CI=true, which is not allowed: {report.longrepr}"


def make_operator(user):
    """Put ``user`` in the "operators" group (made after migrations): they see and act on everything."""
    user.groups.add(Group.objects.get(name=OPERATORS_GROUP))
    return user


@pytest.fixture
def alice(django_user_model):
    """A plain signed-up user (no permissions): she sees and acts on her own work only."""
    return django_user_model.objects.create_user("alice", password="pw-alice-1234")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw-bob-1234")


@pytest.fixture
def demo_agents(db):
    return {config.name: config for config in demo_agents_load()}


@pytest.fixture
def make_agent(db):
    """An agent config of kind python running ``tests.agents.<name>``."""

    def make(function: str, *, name: str | None = None, **fields) -> AgentConfig:
        return AgentConfig.objects.create(
            name=name or function.replace("_", "-"),
            settings={"path": f"tests.agents.{function}"},
            **fields,
        )

    return make


@pytest.fixture
def run():
    """Run an execution in this process, as a worker would, and return it refreshed."""

    def run_it(execution):
        outcome = ExecutionRunner(execution.pk).run()
        execution.refresh_from_db()
        execution.outcome = outcome
        return execution

    return run_it


@pytest.fixture
def fresh_live(monkeypatch):
    """Each test's event loop gets its own channel layer, relay, feeds and shared renders (all are per
    process otherwise)."""
    monkeypatch.setattr(live, "relay", live.EventRelay())
    monkeypatch.setattr(feeds, "feeds", {})
    monkeypatch.setattr(consumers, "page_renders", SharedRenders())
    monkeypatch.setattr(consumers, "submitters", consumers.Submitters())
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()
