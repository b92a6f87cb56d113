"""Fixtures of the websocket tests: a fresh live machinery per test, a signed-in session."""

import pytest
from channels.layers import channel_layers

from executions import consumers, feeds, live
from executions.renders import SharedRenders
from tests.conftest import make_operator


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


@pytest.fixture
def session(client, django_user_model) -> str:
    """An operator's session: the executions these tests watch are submitted by nobody in particular."""
    client.force_login(make_operator(django_user_model.objects.create_user("alice", password="pw-alice-1234")))
    return client.cookies["sessionid"].value
