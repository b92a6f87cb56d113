"""Checks on an agent config's kind settings, shared by the admin form and the factory.

Kept free of the kinds' client libraries so that ``routing.models`` can import it cheaply.
"""

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from django.core.exceptions import ValidationError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET_WORDS = ("key", "token", "secret", "password", "authorization", "cookie", "credential")
SECRET_ADVICE = "secrets are never stored in settings: put the key in an environment variable and name it in secret_env"

KIND_SETTINGS = {
    "llm": {"base_url", "model", "temperature", "max_tokens", "request_timeout", "max_retries"},
    "http": {"url", "timeout", "headers"},
}


def validate_kind_settings(kind: str, settings: object, *, secret_env: str = "") -> None:
    """Raise ``ValidationError`` (keyed by field) if ``settings`` cannot drive an agent of ``kind``."""
    errors: dict[str, list[str]] = {}
    settings_problems = list(_settings_problems(kind, settings))
    if settings_problems:
        errors["settings"] = settings_problems
    if secret_env and not ENV_NAME.fullmatch(secret_env):
        # Deliberately does not repeat the value: it may be a key pasted into the wrong field.
        errors["secret_env"] = [
            "secret_env names an environment variable (letters, digits and _, like OPENAI_API_KEY), not the key itself."
        ]
    if errors:
        raise ValidationError(errors)


def _settings_problems(kind: str, settings: object) -> Iterator[str]:
    if not isinstance(settings, dict):
        yield f"settings must be a JSON object, not {type(settings).__name__}."
        return
    if kind == "python":
        if not isinstance(settings.get("path"), str) or not settings["path"].strip():
            yield 'A python agent needs settings.path, a dotted path like "package.module.callable".'
        return
    allowed = KIND_SETTINGS.get(kind)
    if allowed is None:
        return  # an unknown kind is reported by the kind field's own choices
    for name in sorted(set(settings) - allowed):
        if any(word in name.lower() for word in SECRET_WORDS):
            yield f"settings.{name}: {SECRET_ADVICE}."
        else:
            yield f"Unknown setting {name!r} for a {kind} agent; expected some of: {', '.join(sorted(allowed))}."
    if kind == "llm":
        yield from _llm_problems(settings)
    else:
        yield from _http_problems(settings)


def _llm_problems(settings: dict) -> Iterator[str]:
    yield from _url_problems(settings, "base_url", example="http://localhost:11434/v1")
    model = settings.get("model")
    if not isinstance(model, str) or not model.strip():
        yield 'settings.model is required: the model name the endpoint serves, like "gpt-4o-mini" or "llama3.2".'
    yield from _number_problems(settings, "temperature", low=0, high=2)
    yield from _integer_problems(settings, "max_tokens", low=1)
    yield from _number_problems(settings, "request_timeout", low=0, low_open=True)
    yield from _integer_problems(settings, "max_retries", low=0, high=10)


def _http_problems(settings: dict) -> Iterator[str]:
    yield from _url_problems(settings, "url", example="https://agents.example.com/summarise")
    yield from _number_problems(settings, "timeout", low=0, low_open=True)
    headers = settings.get("headers", {})
    if not isinstance(headers, dict):
        yield 'settings.headers must be an object of header names to values, like {"X-Team": "search"}.'
        return
    for name, value in headers.items():
        if any(word in name.lower() for word in SECRET_WORDS):
            yield f"settings.headers.{name}: {SECRET_ADVICE} (it is sent as Authorization: Bearer <key>)."
        elif not isinstance(value, str):
            yield f"settings.headers.{name} must be a string."


def _url_problems(settings: dict, name: str, *, example: str) -> Iterator[str]:
    url = settings.get(name)
    if not isinstance(url, str) or not url.strip():
        yield f"settings.{name} is required, like {example!r}."
        return
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        yield f"settings.{name} must be an http:// or https:// URL with a host, like {example!r}."
    elif parts.username or parts.password:
        yield f"settings.{name} must not carry credentials: {SECRET_ADVICE}."


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _number_problems(
    settings: dict, name: str, *, low: float, high: float | None = None, low_open: bool = False
) -> Iterator[str]:
    if name not in settings:
        return
    value = settings[name]
    too_low = _is_number(value) and (value <= low if low_open else value < low)
    too_high = _is_number(value) and high is not None and value > high
    if not _is_number(value) or too_low or too_high:
        bound = f"more than {low:g}" if low_open else f"at least {low:g}"
        bound += f" and at most {high:g}" if high is not None else ""
        yield f"settings.{name} must be a number {bound}."


def _integer_problems(settings: dict, name: str, *, low: int, high: int | None = None) -> Iterator[str]:
    if name not in settings:
        return
    value = settings[name]
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f"at least {low}" + (f" and at most {high}" if high is not None else "")
        yield f"settings.{name} must be a whole number {bound}."
