"""Kind settings are checked when a config is saved through a form (``clean``) and again when it is built."""

import pytest
from django.core.exceptions import ValidationError

from routing.factory import AgentBuildError, AgentFactory
from routing.kinds import validate_kind_settings
from routing.models import AgentConfig, AgentKind

LLM = {"base_url": "http://localhost:11434/v1", "model": "llama3.2"}
HTTP = {"url": "https://agents.example.com/summarise"}


def problems(kind: str, settings: object, **options) -> dict[str, list[str]]:
    with pytest.raises(ValidationError) as caught:
        validate_kind_settings(kind, settings, **options)
    return caught.value.message_dict


@pytest.mark.parametrize(
    ("kind", "settings"),
    [
        ("llm", LLM),
        ("llm", {**LLM, "temperature": 0, "max_tokens": 512, "request_timeout": 30, "max_retries": 2}),
        ("llm", {"base_url": "http://vllm:8000/v1", "model": "qwen"}),
        ("http", HTTP),
        ("http", {**HTTP, "timeout": 2.5, "headers": {"X-Team": "search"}}),
        ("python", {"path": "routing.agents.demo.slow_task", "anything": "the callable reads"}),
    ],
)
def test_good_settings_pass(kind, settings):
    validate_kind_settings(kind, settings)


def test_an_llm_agent_needs_a_base_url_and_a_model():
    messages = problems("llm", {})["settings"]
    assert "settings.base_url is required, like 'http://localhost:11434/v1'." in messages
    assert any(message.startswith("settings.model is required") for message in messages)


@pytest.mark.parametrize("base_url", ["localhost:11434/v1", "ftp://models.example.com", "http://", 42])
def test_a_base_url_must_be_an_http_url(base_url):
    (message,) = problems("llm", {**LLM, "base_url": base_url})["settings"]
    assert message.startswith("settings.base_url must be an http:// or https:// URL") or "required" in message


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("temperature", 3, "settings.temperature must be a number at least 0 and at most 2."),
        ("temperature", "warm", "settings.temperature must be a number at least 0 and at most 2."),
        ("max_tokens", 0, "settings.max_tokens must be a whole number at least 1."),
        ("max_tokens", 1.5, "settings.max_tokens must be a whole number at least 1."),
        ("request_timeout", 0, "settings.request_timeout must be a number more than 0."),
        ("max_retries", True, "settings.max_retries must be a whole number at least 0 and at most 10."),
    ],
)
def test_llm_options_are_range_checked(name, value, expected):
    assert problems("llm", {**LLM, name: value})["settings"] == [expected]


def test_an_unknown_setting_is_named_with_the_ones_expected():
    (message,) = problems("llm", {**LLM, "base-url": "x"})["settings"]
    assert message == (
        "Unknown setting 'base-url' for a llm agent; expected some of: "
        "base_url, max_retries, max_tokens, model, prices, request_timeout, temperature."
    )


@pytest.mark.parametrize("name", ["api_key", "token", "OPENAI_API_KEY"])
def test_a_secret_in_settings_is_refused_with_advice(name):
    (message,) = problems("llm", {**LLM, name: "sk-live-123"})["settings"]
    assert "secrets are never stored in settings" in message and "secret_env" in message
    assert "sk-live-123" not in message


def test_credentials_in_a_url_are_refused():
    (message,) = problems("http", {"url": "https://user:hunter2@agents.example.com/x"})["settings"]
    assert message.startswith("settings.url must not carry credentials")
    assert "hunter2" not in message


def test_an_http_agent_needs_a_url_and_sane_options():
    messages = problems("http", {"timeout": -1, "headers": ["X-Team"]})["settings"]
    assert messages == [
        "settings.url is required, like 'https://agents.example.com/summarise'.",
        "settings.timeout must be a number more than 0.",
        'settings.headers must be an object of header names to values, like {"X-Team": "search"}.',
    ]


@pytest.mark.parametrize("header", ["Authorization", "X-Api-Key", "Cookie"])
def test_secret_headers_are_refused(header):
    (message,) = problems("http", {**HTTP, "headers": {header: "abc"}})["settings"]
    assert message.startswith(f"settings.headers.{header}: secrets are never stored in settings")


def test_settings_must_be_an_object():
    assert problems("http", ["https://x"])["settings"] == ["settings must be a JSON object, not list."]


def test_a_python_agent_needs_a_path():
    assert problems("python", {})["settings"][0].startswith("A python agent needs settings.path")


def test_secret_env_must_name_a_variable_not_hold_the_key():
    (message,) = problems("llm", LLM, secret_env="sk-proj-abc123")["secret_env"]
    assert "names an environment variable" in message and "sk-proj-abc123" not in message


@pytest.mark.django_db
def test_full_clean_reports_every_problem_naming_its_field():
    config = AgentConfig(name="writer", kind=AgentKind.LLM, settings={"model": "x"}, secret_env="not a name")
    with pytest.raises(ValidationError) as caught:
        config.full_clean()
    messages = caught.value.message_dict["__all__"]
    assert messages[0].startswith("settings.base_url is required")
    assert messages[1].startswith("secret_env names an environment variable")

    config.settings, config.secret_env = LLM, "WRITER_API_KEY"
    config.full_clean()


@pytest.mark.django_db
def test_the_admin_list_shows_a_misconfigured_agents_problems_instead_of_crashing(admin_client):
    broken = AgentConfig.objects.create(name="broken", kind=AgentKind.LLM, settings={})
    response = admin_client.post(
        "/admin/routing/agentconfig/",
        {
            "form-TOTAL_FORMS": "1",
            "form-INITIAL_FORMS": "1",
            "form-0-id": str(broken.pk),
            "form-0-enabled": "",
            "_save": "Save",
        },
    )
    assert response.status_code == 200
    assert "settings.base_url is required" in response.content.decode()
    broken.refresh_from_db()
    assert broken.enabled is True, "saved despite its problems"


@pytest.mark.django_db
def test_a_misconfigured_row_saved_without_clean_is_refused_when_built():
    config = AgentConfig.objects.create(name="broken", kind=AgentKind.HTTP, settings={"url": "nowhere"})
    with pytest.raises(AgentBuildError, match=r"Agent 'broken' is misconfigured: settings.url must be an http"):
        AgentFactory().create_agent(config.pk)
