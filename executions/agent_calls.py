"""Where agents run inside a worker process: one event loop for async agents, a bounded pool for sync ones.

Agents spend their time waiting on the network, so a worker process runs many
at once (``SYMPHONY_SLOTS``). Async agents (the ``llm`` and ``http`` kinds,
and any ``async def`` agent) share one event loop in a thread of its own; sync
agents each get a thread of a pool as large as the slots. Either way a call is
a ``concurrent.futures.Future`` whose result is an ``AgentCall``: what the
agent returned, or what it raised (anything, ``SystemExit`` included, is
caught here so it can never end the loop or the pool's thread).

An async agent that blocks (a sync sleep inside ``async def``) stalls the
others on the loop until it returns; the supervisor runs in another thread, so
deadlines and leases are still kept, and an agent that will not stop makes
the worker recycle (``executions.slots``).
"""

import asyncio
import functools
import inspect
import threading
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connections
from django.utils.module_loading import import_string

from executions.context import ExecutionContext


@dataclass
class AgentCall:
    """How one agent call ended: its value, or the exception it raised with its traceback."""

    value: Any = None
    error: BaseException | None = None
    traceback: str = ""


class AgentLoop:
    """This process's event loop for async agents, in a daemon thread started on first use."""

    def __init__(self):
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                ready = threading.Event()
                thread = threading.Thread(target=self._run, args=(loop, ready), name="agent-loop", daemon=True)
                thread.start()
                ready.wait()
                self._loop = loop
            return self._loop

    @staticmethod
    def _run(loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()

    def submit(self, coroutine) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)


class AgentThreads:
    """A pool of threads for sync agents, created on first use and sized to the slots
    (made again if the setting changed, as tests change it)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    def submit(self, call, *args) -> Future:
        size = max(1, settings.SYMPHONY_SLOTS)
        with self._lock:
            if self._pool is None or self._pool._max_workers != size:
                if self._pool is not None:
                    self._pool.shutdown(wait=False)  # the calls it runs finish on its threads
                self._pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="agent")
            return self._pool.submit(call, *args)


agent_loop = AgentLoop()
agent_threads = AgentThreads()


def start_agent(agent, ctx: ExecutionContext) -> Future:
    """Start ``agent`` on ``ctx.input``; the future's result is an ``AgentCall`` (it never raises,
    except ``CancelledError`` for an async agent cancelled before it began)."""
    if agent.is_async:
        return agent_loop.submit(_call_async(agent, ctx))
    return agent_threads.submit(_call_sync, agent, ctx)


def _call_sync(agent, ctx: ExecutionContext) -> AgentCall:
    """Body of a pool thread: run a sync agent (its hooks around it) and keep what it returned or raised."""
    try:
        _run_hooks("pre", ctx)
        value = agent.run(ctx.input, ctx)
        if inspect.isawaitable(value):  # a sync callable that returned a coroutine: await it on the loop
            value = agent_loop.submit(_awaited(value, ctx)).result()
        _run_hooks("post", ctx, value)
        return AgentCall(value=value)
    except BaseException as exc:  # noqa: BLE001 - an agent may raise anything, SystemExit included
        return AgentCall(error=exc, traceback=traceback.format_exc())
    finally:
        connections.close_all()  # only this thread's: a pool of idle threads must not hold connections


async def _call_async(agent, ctx: ExecutionContext) -> AgentCall:
    try:
        if worker_hooks("pre"):
            await asyncio.get_running_loop().run_in_executor(None, _hooks_in_thread, "pre", ctx, ())
        value = await _awaited(agent.run(ctx.input, ctx), ctx)
        if worker_hooks("post"):
            await asyncio.get_running_loop().run_in_executor(None, _hooks_in_thread, "post", ctx, (value,))
        return AgentCall(value=value)
    except BaseException as exc:  # noqa: BLE001 - CancelledError included: the supervisor knows why it cancelled
        return AgentCall(error=exc, traceback=traceback.format_exc())


async def _awaited(awaitable, ctx: ExecutionContext):
    ctx._loop, ctx._task = asyncio.get_running_loop(), asyncio.current_task()
    if ctx.is_cancelled():
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never started: no "was never awaited" warning
        raise asyncio.CancelledError
    return await awaitable


@functools.cache
def worker_hooks(which: str) -> tuple:
    """``SYMPHONY_AGENT_HOOKS[which]`` imported once per process: callables run around every agent call."""
    return tuple(import_string(path) for path in settings.SYMPHONY_AGENT_HOOKS.get(which, ()))


def _hooks_in_thread(which: str, ctx: ExecutionContext, result: tuple) -> None:
    try:
        _run_hooks(which, ctx, *result)
    finally:
        connections.close_all()


def _run_hooks(which: str, ctx: ExecutionContext, *result) -> None:
    """``pre(ctx)`` before the agent, ``post(ctx, result)`` after; a hook that raises is logged, not fatal."""
    for hook in worker_hooks(which):
        try:
            hook(ctx, *result)
        except Exception as exc:
            ctx.log(f"[symphony] {which}-execution hook {getattr(hook, '__qualname__', hook)} failed: "
                    f"{type(exc).__name__}: {exc}")  # fmt: skip
