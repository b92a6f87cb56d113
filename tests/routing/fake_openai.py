"""A small OpenAI-compatible chat server on loopback, so the llm kind is tested over real HTTP.

It speaks just enough of ``POST /v1/chat/completions`` (plain and streamed as
server-sent events) for the official client, records every request, and
misbehaves on demand: each request takes the next entry of ``behaviours``
(``"normal"`` once the list is empty).
"""

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BEHAVIOURS = frozenset(
    {"normal", "rate_limited", "server_error", "unauthorized", "slow", "stall", "malformed", "empty", "truncated"}
)


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    body: Any  # parsed JSON, or the raw text if it was not JSON


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 at a free port that records the requests it answers."""

    def __init__(self, handler_class: type[BaseHTTPRequestHandler]):
        self.requests: list[RecordedRequest] = []
        self.stopping = threading.Event()  # wakes handlers that sleep on purpose, so shutdown is quick
        self._server = QuietServer(("127.0.0.1", 0), handler_class)
        self._server.app = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def record(self, handler: BaseHTTPRequestHandler) -> RecordedRequest:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode("utf-8", "replace")
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        request = RecordedRequest(
            handler.command, handler.path, {name.lower(): value for name, value in handler.headers.items()}, body
        )
        self.requests.append(request)
        return request


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default backlog of 5 resets connections when hundreds of clients connect
    # at once (bench/llm_streaming.py runs 200 concurrent streams against this server).
    request_queue_size = 512
    app: LoopbackServer

    def handle_error(self, request, client_address) -> None:
        """A client that hangs up (timeouts under test) is expected; no traceback on stderr."""


class JSONHandler(BaseHTTPRequestHandler):
    """Helpers shared by the fake servers' handlers."""

    server: QuietServer

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's signature
        """Silent: pytest shows stderr of failing tests, and request lines are noise there."""

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_text(status, json.dumps(payload), "application/json", headers)

    def send_text(self, status: int, text: str, content_type: str, headers: dict[str, str] | None = None) -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class FakeOpenAI(LoopbackServer):
    def __init__(self):
        super().__init__(ChatCompletionsHandler)
        self.reply = "Symphony streams every token as it arrives."
        self.behaviours: list[str] = []
        self.token_delay = 0.0  # seconds between streamed tokens
        self.slow_seconds = 5.0  # how long "slow" and "stall" keep the client waiting
        self.retry_after = "2"

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def tokens(self) -> list[str]:
        """The reply cut into word tokens that keep their leading space, as real models stream them."""
        words = self.reply.split(" ")
        return [words[0]] + [f" {word}" for word in words[1:]]

    def next_behaviour(self) -> str:
        behaviour = self.behaviours.pop(0) if self.behaviours else "normal"
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown fake behaviour {behaviour!r}")
        return behaviour

    def usage(self, body: dict, completion: int) -> dict[str, int]:
        prompt = sum(len(str(message.get("content", "")).split()) for message in body.get("messages", []))
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


class ChatCompletionsHandler(JSONHandler):
    def do_POST(self) -> None:
        fake: FakeOpenAI = self.server.app
        request = fake.record(self)
        if self.path != "/v1/chat/completions":
            self.send_json(404, {"error": {"message": f"Unknown path {self.path}", "type": "invalid_request_error"}})
            return
        behaviour = fake.next_behaviour()
        if behaviour == "rate_limited":
            self.send_json(
                429,
                {"error": {"message": "Rate limit reached for requests", "code": "rate_limit_exceeded"}},
                {"Retry-After": fake.retry_after},
            )
        elif behaviour == "server_error":
            self.send_json(500, {"error": {"message": "The server had an error while processing your request."}})
        elif behaviour == "unauthorized":
            # Echoes the whole header back, as a careless proxy might: the agent must not store it.
            given = request.headers.get("authorization", "")
            self.send_json(401, {"error": {"message": f"Incorrect API key provided: {given}"}})
        else:
            if behaviour == "slow" and fake.stopping.wait(fake.slow_seconds):
                return
            body = request.body if isinstance(request.body, dict) else {}
            if body.get("stream"):
                self.stream_reply(fake, body, behaviour)
            else:
                self.send_json(200, completion(fake, body))

    def stream_reply(self, fake: FakeOpenAI, body: dict, behaviour: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.end_headers()
        model = body.get("model", "fake-model")
        self.event(chunk(model, {"role": "assistant", "content": ""}))
        if behaviour == "malformed":
            self.event("this is not JSON at all")
            return
        tokens = [] if behaviour == "empty" else fake.tokens
        for number, token in enumerate(tokens):
            if number and fake.token_delay:
                time.sleep(fake.token_delay)
            self.event(chunk(model, {"content": token}))
            if behaviour == "stall" and fake.stopping.wait(fake.slow_seconds):
                return
        if behaviour == "truncated":
            return  # the connection closes without a finish_reason or [DONE]
        self.event(chunk(model, {}, finish_reason="stop"))
        if (body.get("stream_options") or {}).get("include_usage"):
            self.event({**chunk(model, {}), "choices": [], "usage": fake.usage(body, len(tokens))})
        self.event("[DONE]")

    def event(self, data: Any) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        self.wfile.write(f"data: {text}\n\n".encode())
        self.wfile.flush()


def chunk(model: str, delta: dict, finish_reason: str | None = None) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def completion(fake: FakeOpenAI, body: dict) -> dict:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "fake-model"),
        "choices": [{"index": 0, "message": {"role": "assistant", "content": fake.reply}, "finish_reason": "stop"}],
        "usage": fake.usage(body, len(fake.tokens)),
    }
