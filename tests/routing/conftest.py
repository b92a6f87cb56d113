import socket

import pytest
from django.apps import apps
from django.core import serializers

from routing.models import AgentConfig, AgentKind
from tests.routing.fake_openai import FakeOpenAI, JSONHandler, LoopbackServer

TEST_KEY = "sk-symphony-test-0f1e2d3c4b5a69788796a5b4c3d2e1f0"


@pytest.fixture
def fake_openai():
    """An OpenAI-compatible chat endpoint on loopback; set ``behaviours`` to make it misbehave."""
    with FakeOpenAI() as server:
        yield server


@pytest.fixture
def llm_agent(db, fake_openai):
    """An agent config of kind llm pointed at the fake endpoint."""

    def make(*, name: str = "writer", settings: dict | None = None, **fields) -> AgentConfig:
        fields.setdefault("role", "technical writer")
        fields.setdefault("instruction_template", "You are {name}, a {role}. Answer briefly.")
        return AgentConfig.objects.create(
            name=name,
            kind=AgentKind.LLM,
            settings={
                "base_url": fake_openai.base_url,
                "model": "fake-model",
                "request_timeout": 5,
                **(settings or {}),
            },
            **fields,
        )

    return make


class FakeService(LoopbackServer):
    """An agent web service on loopback that answers each POST with the next scripted reply.

    A reply is ``(status, body)``: a body that is not a string is sent as JSON. ``"slow"`` waits
    ``slow_seconds`` first. With no script left it answers ``200`` and ``default_reply``.
    """

    def __init__(self):
        super().__init__(ServiceHandler)
        self.replies: list[tuple[int, object] | str] = []
        self.default_reply: object = {"answer": 42}
        self.slow_seconds = 5.0

    @property
    def endpoint(self) -> str:
        return f"{self.url}/agents/answer"


class ServiceHandler(JSONHandler):
    def do_POST(self) -> None:
        service: FakeService = self.server.app
        service.record(self)
        reply = service.replies.pop(0) if service.replies else (200, service.default_reply)
        if reply == "slow":
            if service.stopping.wait(service.slow_seconds):
                return
            reply = (200, service.default_reply)
        status, body = reply
        if isinstance(body, str):
            self.send_text(status, body, "text/html")
        else:
            self.send_json(status, body)


@pytest.fixture
def fake_service():
    with FakeService() as server:
        yield server


@pytest.fixture
def http_agent(db, fake_service):
    """An agent config of kind http pointed at the fake service."""

    def make(*, name: str = "answerer", settings: dict | None = None, **fields) -> AgentConfig:
        return AgentConfig.objects.create(
            name=name,
            kind=AgentKind.HTTP,
            settings={"url": fake_service.endpoint, "timeout": 5, **(settings or {})},
            **fields,
        )

    return make


@pytest.fixture
def unused_port():
    """A loopback port with nothing listening: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stored_text() -> str:
    """Every row of every table, serialised: where a leaked key would show."""
    return "".join(serializers.serialize("json", model._default_manager.all()) for model in apps.get_models())
