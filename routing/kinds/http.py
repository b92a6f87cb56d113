"""The ``http`` kind: an agent that is a web service answering one POST per task.

The request body is ``{"task": <input>, "execution_id", "attempt", "metadata"}``;
a 2xx JSON answer is the result. Asynchronous, so that the runner's
cancellation cancels the request.
"""

import math
import time
from typing import Any

import httpx

from routing.kinds.errors import AgentCallError, describe_status, excerpt, status_error

DEFAULT_TIMEOUT = 30.0


class HTTPAgent:
    """Built once per attempt by the factory; ``run`` is the agent the runner calls."""

    def __init__(self, config, *, api_key: str | None):
        settings = config.settings
        self.url = settings["url"]
        self.timeout = float(settings.get("timeout", DEFAULT_TIMEOUT))
        self.headers = {"Accept": "application/json", **settings.get("headers", {})}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._api_key = api_key

    async def run(self, input_data: Any, ctx) -> Any:
        payload = {
            "task": input_data,
            "execution_id": ctx.execution_id,
            "attempt": ctx.attempt,
            "metadata": ctx.metadata,
        }
        ctx.progress(10, "Calling the service")
        started = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as client:
                response = await client.post(self.url, json=payload, headers=self.headers)
        except httpx.TimeoutException:
            raise AgentCallError(
                f"Timed out after {self.timeout:g}s waiting for {self.url}", retryable=True, endpoint=self.url
            ) from None
        except httpx.TransportError as exc:
            reason = excerpt(f"{type(exc).__name__}: {exc}", secret=self._api_key)
            raise AgentCallError(f"Could not reach {self.url} ({reason})", retryable=True, endpoint=self.url) from None
        status = response.status_code
        ctx.log(f"POST {self.url} -> {status} in {time.monotonic() - started:.2f}s")
        if not 200 <= status < 300:
            raise status_error(
                describe_status(status), endpoint=self.url, status=status, body=response.text, secret=self._api_key
            )
        if status == 204:
            result = None  # "no content" is an explicit, valid answer
        else:
            try:
                result = response.json()
            except ValueError:
                body = excerpt(response.text, secret=self._api_key) or "<empty body>"
                raise AgentCallError(
                    f"Malformed JSON from {self.url} (status {status}): {body}",
                    retryable=False,
                    endpoint=self.url,
                    status=status,
                    body_excerpt=body,
                ) from None
        self._record_usage(result, ctx)
        ctx.progress(100, "Done")
        return result

    @staticmethod
    def _record_usage(result: Any, ctx) -> None:
        """A service that reports ``"usage": {"name": <number>}`` has those counts added to the execution's."""
        usage = result.get("usage") if isinstance(result, dict) else None
        if not isinstance(usage, dict):
            return
        counts = {
            name: value
            for name, value in usage.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        }
        if counts:
            ctx.record_usage(**counts)
