"""The ``llm`` kind: any OpenAI-compatible chat endpoint (OpenAI, Ollama, vLLM, LM Studio...).

Uses the official ``openai`` client, asynchronously, so that the runner's
cancellation (a cancel, the execution's deadline) cancels the request itself.
Tokens are streamed into the execution's live log as they arrive.
"""

import asyncio
import json
import weakref
from dataclasses import dataclass, field
from typing import Any

import openai

from routing.kinds.errors import AgentCallError, describe_status, excerpt, parse_retry_after, status_error
from routing.kinds.prompts import chat_messages

# Local servers want no key, but the client refuses to start without one; never fall back
# to the worker's own OPENAI_API_KEY, which would send it to whatever base_url says.
PLACEHOLDER_KEY = "no-key-configured"
# Longest silence tolerated from the endpoint (connect, or between two streamed chunks).
DEFAULT_REQUEST_TIMEOUT = 120.0
OPTIONAL_PARAMETERS = ("temperature", "max_tokens")


# One client per event loop and endpoint: a worker's agents share its loop, and building a
# client (its TLS context above all) took 31 ms of the loop's time here, so 100 executions
# starting together waited up to 3 s for their first token (bench/llm_streaming.py).
_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict]" = weakref.WeakKeyDictionary()


def shared_client(**options) -> openai.AsyncOpenAI:
    """The running loop's client for these options (endpoint, key, timeout, retries), made on first use."""
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    key = tuple(sorted(options.items()))
    client = clients.get(key)
    if client is None:
        client = clients[key] = openai.AsyncOpenAI(**options)
    return client


@dataclass
class Reply:
    parts: list[str] = field(default_factory=list)
    model: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] = field(default_factory=dict)

    @property
    def content(self) -> str:
        return "".join(self.parts)


class LLMAgent:
    """Built once per attempt by the factory; ``run`` is the agent the runner calls."""

    def __init__(self, config, *, api_key: str | None):
        settings = config.settings
        self.config = config
        self.endpoint = settings["base_url"].rstrip("/")
        self.model = settings["model"]
        self.request_timeout = float(settings.get("request_timeout", DEFAULT_REQUEST_TIMEOUT))
        # Symphony's runner retries whole attempts, visibly; hidden client retries would only add delay.
        self.max_retries = int(settings.get("max_retries", 0))
        self.parameters = {name: settings[name] for name in OPTIONAL_PARAMETERS if name in settings}
        self._api_key = api_key

    async def run(self, input_data: Any, ctx) -> dict:
        messages = chat_messages(self.config, input_data)
        ctx.progress(5, f"Connecting to {self.model}")
        ctx.log(f"POST {self.endpoint}/chat/completions (model {self.model}, {len(messages)} messages)")
        client = shared_client(
            api_key=self._api_key or PLACEHOLDER_KEY,
            base_url=self.endpoint,
            timeout=self.request_timeout,
            max_retries=self.max_retries,
        )
        try:
            stream = await client.chat.completions.create(
                model=self.model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **self.parameters,
            )
            ctx.progress(10, "Streaming")
            async with stream:  # releases the connection even when the reply is abandoned part-way
                reply = await self._read(stream, ctx)
            content_type = stream.response.headers.get("content-type", "")
        # ``from None``: the client's own exception text may quote the key or a raw body.
        except openai.APIError as exc:
            raise self._call_error(exc) from None
        except json.JSONDecodeError as exc:
            raise AgentCallError(
                f"Malformed stream from {self.endpoint}: {excerpt(exc.doc, secret=self._api_key) or '<empty event>'}",
                retryable=False,
                endpoint=self.endpoint,
            ) from None
        self._check_complete(reply, content_type)
        if reply.usage:
            ctx.record_usage(**reply.usage)
        else:
            ctx.log(f"{self.endpoint} reported no token usage")
        ctx.log(f"{len(reply.content)} characters, finish_reason {reply.finish_reason}")
        ctx.progress(100, "Done")
        return {
            "content": reply.content,
            "model": reply.model or self.model,
            "finish_reason": reply.finish_reason,
            "usage": reply.usage,
        }

    async def _read(self, stream, ctx) -> Reply:
        reply = Reply()
        async for chunk in stream:
            choices = getattr(chunk, "choices", None)
            if not isinstance(choices, list):
                raise AgentCallError(
                    f"Malformed stream from {self.endpoint}: a chunk without choices: {self._excerpt_of(chunk)}",
                    retryable=False,
                    endpoint=self.endpoint,
                )
            reply.model = getattr(chunk, "model", None) or reply.model
            usage = getattr(chunk, "usage", None)
            if usage is not None:
                reply.usage = usage_counts(usage)
            for choice in choices[:1]:  # one completion requested, so only index 0 carries it
                text = getattr(getattr(choice, "delta", None), "content", None)
                if isinstance(text, str) and text:
                    reply.parts.append(text)
                    ctx.stream(text)
                reply.finish_reason = getattr(choice, "finish_reason", None) or reply.finish_reason
        return reply

    def _check_complete(self, reply: Reply, content_type: str) -> None:
        if reply.content and reply.finish_reason:
            return
        if reply.content:
            # The connection closed cleanly mid-answer (a proxy or server restart): worth another try.
            raise AgentCallError(
                f"The stream from {self.endpoint} ended before the model finished "
                f"({len(reply.content)} characters received, no finish_reason)",
                retryable=True,
                endpoint=self.endpoint,
            )
        raise AgentCallError(
            f"{self.endpoint} returned no content for model {self.model} "
            f"(finish_reason {reply.finish_reason or 'none'}, content-type {content_type or 'none'})",
            retryable=False,
            endpoint=self.endpoint,
        )

    def _call_error(self, exc: openai.APIError) -> AgentCallError:
        endpoint = self.endpoint
        if isinstance(exc, openai.APITimeoutError):
            return AgentCallError(
                f"Timed out after {self.request_timeout:g}s waiting for {endpoint}", retryable=True, endpoint=endpoint
            )
        if isinstance(exc, openai.APIConnectionError):
            cause = exc.__cause__ or exc
            reason = excerpt(f"{type(cause).__name__}: {cause}", secret=self._api_key)
            return AgentCallError(f"Could not connect to {endpoint} ({reason})", retryable=True, endpoint=endpoint)
        if isinstance(exc, openai.APIStatusError):
            headers = exc.response.headers
            retry_after = None
            if exc.status_code == 429:
                milliseconds = parse_retry_after(headers.get("retry-after-ms"))
                retry_after = milliseconds / 1000 if milliseconds is not None else None
                retry_after = retry_after if retry_after is not None else parse_retry_after(headers.get("retry-after"))
            return status_error(
                describe_status(exc.status_code),
                endpoint=endpoint,
                status=exc.status_code,
                body=_body_text(exc),
                secret=self._api_key,
                retry_after=retry_after,
            )
        # An error event inside a 200 stream: the server gave up part-way, as an overloaded one does.
        return AgentCallError(
            f"Error from {endpoint} mid-stream: {excerpt(exc.body or exc.message, secret=self._api_key)}",
            retryable=True,
            endpoint=endpoint,
        )

    def _excerpt_of(self, chunk: Any) -> str:
        dump = getattr(chunk, "model_dump_json", None)
        text = dump(exclude_unset=True, warnings=False) if callable(dump) else repr(chunk)
        return excerpt(text, secret=self._api_key)


def usage_counts(usage: Any) -> dict[str, int]:
    """The top-level token counts of a usage object; nested details vary by server and are left out."""
    raw = usage.model_dump() if hasattr(usage, "model_dump") else usage
    if not isinstance(raw, dict):
        return {}
    return {name: value for name, value in raw.items() if isinstance(value, int) and not isinstance(value, bool)}


def _body_text(exc: openai.APIStatusError) -> object:
    try:
        return exc.response.text
    except Exception:  # a streamed error response may not have been read; the parsed body will do
        return exc.body if exc.body is not None else exc.message
