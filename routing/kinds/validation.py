"""Checks on an agent config's kind settings, shared by the admin form and the factory.

Kept free of the kinds' client libraries so that ``routing.models`` can import it cheaply.
"""

import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from django.core.exceptions import ValidationError

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SECRET_WORDS = ("key", "token", "secret", "password", "authorization", "cookie", "credential")
SECRET_ADVICE = "secrets are never stored in settings: put the key in an environment variable and name it in secret_env"

# A run of 16+ letters and digits mixing both, between underscores: how keys look ("sk_live_51Hx...",
# "ghp_..."), and no environment variable's name does.
KEY_LIKE_PART = re.compile(r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{16,}")
# A header value that carries its own credentials.
CREDENTIAL_SCHEMES = ("bearer ", "basic ", "token ", "digest ")
REDACTED = "[redacted]"

KIND_SETTINGS = {
    "llm": {"base_url", "model", "temperature", "max_tokens", "request_timeout", "max_retries", "prices"},
    "http": {"url", "timeout", "headers", "prices"},
}
# settings.prices: what the agent's tokens cost, for the execution page (``executions.usage``).
PRICE_NAMES = ("input_per_million", "output_per_million")
PRICES_EXAMPLE = '{"input_per_million": 0.15, "output_per_million": 0.6, "currency": "USD"}'


def validate_kind_settings(kind: str, settings: object, *, secret_env: str = "") -> None:
    """Raise ``ValidationError`` (keyed by field) if ``settings`` cannot drive an agent of ``kind``."""
    errors: dict[str, list[str]] = {}
    settings_problems = list(_settings_problems(kind, settings))
    if settings_problems:
        errors["settings"] = settings_problems
    if secret_env and (not ENV_NAME.fullmatch(secret_env) or _looks_like_a_key(secret_env)):
        # Deliberately does not repeat the value: it may be a key pasted into the wrong field.
        errors["secret_env"] = [
            "secret_env names an environment variable (letters, digits and _, like OPENAI_API_KEY), not the key itself."
        ]
    if errors:
        raise ValidationError(errors)


def _looks_like_a_key(name: str) -> bool:
    return any(KEY_LIKE_PART.fullmatch(part) for part in name.split("_"))


def _secret_name(name: object) -> bool:
    return any(word in str(name).lower() for word in SECRET_WORDS)


def public_settings(kind: str, settings: Any) -> Any:
    """``settings`` as the API and the pages may show them: any secret a row holds replaced by ``[redacted]``.

    Validation refuses secrets in an llm or http agent's settings, but rows written by code,
    fixtures or before a rule existed were not validated, and a python agent's settings are
    its own; what is shown is redacted whatever the row holds.
    """
    if not isinstance(settings, dict):
        return settings
    known = KIND_SETTINGS.get(kind, {"path"})  # "max_tokens" is no token
    shown: dict[str, Any] = {}
    for name, value in settings.items():
        if _secret_name(name) and name not in known:
            shown[name] = REDACTED
        elif name == "headers" and isinstance(value, dict):
            shown[name] = {
                header: REDACTED if _secret_name(header) or _carries_credentials(text) else text
                for header, text in value.items()
            }
        elif isinstance(value, str) and "://" in value:
            shown[name] = _url_without_secrets(value)
        else:
            shown[name] = value
    return shown


def _carries_credentials(value: object) -> bool:
    return isinstance(value, str) and value.strip().lower().startswith(CREDENTIAL_SCHEMES)


def _url_without_secrets(url: str) -> str:
    try:
        parts = urlsplit(url)
        has_credentials = bool(parts.username or parts.password)
    except ValueError:
        return REDACTED
    parameters = parse_qsl(parts.query, keep_blank_values=True)
    if not has_credentials and not any(_secret_name(name) for name, _ in parameters):
        return url
    netloc = ("[redacted]@" if has_credentials else "") + parts.netloc.rpartition("@")[2]
    query = "&".join(f"{name}={REDACTED if _secret_name(name) else value}" for name, value in parameters)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _settings_problems(kind: str, settings: object) -> Iterator[str]:
    if not isinstance(settings, dict):
        yield f"settings must be a JSON object, not {type(settings).__name__}."
        return
    if "prices" in settings:
        yield from _prices_problems(settings["prices"])
    if kind == "python":
        if not isinstance(settings.get("path"), str) or not settings["path"].strip():
            yield 'A python agent needs settings.path, a dotted path like "package.module.callable".'
        return
    allowed = KIND_SETTINGS.get(kind)
    if allowed is None:
        return  # an unknown kind is reported by the kind field's own choices
    for name in sorted(set(settings) - allowed):
        if _secret_name(name):
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
        if _secret_name(name) or _carries_credentials(value):
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
    elif any(_secret_name(parameter) for parameter, _ in parse_qsl(parts.query, True)):
        yield f"settings.{name} must not carry a key in its query string: {SECRET_ADVICE}."


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


def _prices_problems(prices: object) -> Iterator[str]:
    if not isinstance(prices, dict):
        yield f"settings.prices must be an object like {PRICES_EXAMPLE}."
        return
    for name in sorted(set(prices) - {*PRICE_NAMES, "currency"}):
        yield f"Unknown price {name!r}; expected some of: currency, {', '.join(PRICE_NAMES)}."
    for name in PRICE_NAMES:
        value = prices.get(name)
        if name in prices and (not _is_number(value) or value < 0 or value == float("inf")):
            yield f"settings.prices.{name} must be a number at least 0 (the price of a million tokens)."
    currency = prices.get("currency", "")
    if not isinstance(currency, str) or len(currency) > 10:
        yield 'settings.prices.currency must be a short text, like "USD".'
