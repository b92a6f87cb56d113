"""Failures of a remote agent call, worded for the person reading the execution's error.

The runner reads ``retryable`` to decide between a new attempt and a final
failure, so each error says which it is, and the message says it too.
"""

import re

MAX_EXCERPT_CHARS = 300
REDACTED = "[redacted]"

# Statuses worth another attempt: the server was busy, timed out or broke, not the request.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def status_is_retryable(status: int) -> bool:
    return status in RETRYABLE_STATUSES or status >= 500


def excerpt(text: object, *, secret: str | None = None, limit: int = MAX_EXCERPT_CHARS) -> str:
    """A short one-line excerpt of a response body, with the agent's key blanked out.

    A misbehaving server may echo request headers back; the key must not reach a stored error.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    flat = re.sub(r"\s+", " ", str(text)).strip()
    if secret:
        flat = flat.replace(secret, REDACTED)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class AgentCallError(Exception):
    """A remote agent (model endpoint or HTTP service) answered badly or not at all."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        endpoint: str,
        status: int | None = None,
        body_excerpt: str = "",
        retry_after: float | None = None,
    ):
        self.retryable = retryable
        self.endpoint = endpoint
        self.status = status
        self.body_excerpt = body_excerpt
        self.retry_after = retry_after
        super().__init__(f"{message}; {'retryable' if retryable else 'not retryable'}")


class AgentInputError(ValueError):
    """The task's input cannot be sent to this agent; another attempt would fail the same way."""

    retryable = False


def status_error(
    what: str, *, endpoint: str, status: int, body: object, secret: str | None, retry_after: float | None = None
) -> AgentCallError:
    """``<what> by/from <endpoint> (<status>)[, retry after Ns]: <excerpt>; retryable|not retryable``."""
    body_excerpt = excerpt(body, secret=secret)
    wait = f", retry after {retry_after:g}s" if retry_after is not None else ""
    return AgentCallError(
        f"{what} {endpoint} ({status}){wait}: {body_excerpt or '<empty body>'}",
        retryable=status_is_retryable(status),
        endpoint=endpoint,
        status=status,
        body_excerpt=body_excerpt,
        retry_after=retry_after,
    )


def describe_status(status: int) -> str:
    """The opening words of a status error, so 429 reads "Rate limited by" and 401 "Authentication failed at"."""
    if status == 429:
        return "Rate limited by"
    if status in (401, 403):
        return "Authentication failed at"
    if status == 404:
        return "Not found at"
    if status >= 500:
        return "Server error from"
    return "Request rejected by"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header; the HTTP-date form is rare for APIs and ignored."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None
