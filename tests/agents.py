"""Agents used by the tests: each misbehaves (or behaves) in one specific way."""

import asyncio
import threading
import time
from pathlib import Path


def echo(input_data, ctx):
    return {"echo": input_data, "attempt": ctx.attempt}


def noop(input_data, ctx):
    return None


def boom(input_data, ctx):
    raise RuntimeError("the agent broke")


def drops_connection(input_data, ctx):
    raise ConnectionResetError("the service hung up")


def marked_retryable(input_data, ctx):
    error = RuntimeError("try me again")
    error.retryable = True
    raise error


def bad_input(input_data, ctx):
    return input_data["missing"]


def not_retryable(input_data, ctx):
    error = ValueError("bad input, retrying will not help")
    error.retryable = False
    raise error


def exits(input_data, ctx):
    raise SystemExit(3)


def returns_set(input_data, ctx):
    return {1, 2, 3}


def returns_nan(input_data, ctx):
    return {"value": float("nan")}


def returns_huge(input_data, ctx):
    return "x" * 2_000_000


def hangs(input_data, ctx):
    """Ignores cancellation entirely."""
    time.sleep(input_data.get("seconds", 30))
    return "woke up"


def sleeps_politely(input_data, ctx):
    """Stops as soon as it is cancelled."""
    for step in range(100):
        ctx.progress(step, f"step {step}")
        if ctx.sleep(input_data.get("tick", 0.05)):
            return {"stopped_at": step}
    return {"finished": True}


def chatty(input_data, ctx):
    count = input_data.get("count", 5000)
    for number in range(count):
        ctx.progress(100 * number / count, f"phase {number // 1000}")
        ctx.log(f"line {number}")
    return {"reported": count}


def bad_progress(input_data, ctx):
    ctx.progress("half")


async def async_echo(input_data, ctx):
    await asyncio.sleep(0)
    ctx.progress(50, "halfway")
    return {"echo": input_data}


async def async_sleeps(input_data, ctx):
    try:
        await asyncio.sleep(input_data.get("seconds", 30))
    except asyncio.CancelledError:
        ctx.log("cancelled politely")
        raise
    return "slept"


async def async_naps(input_data, ctx):
    """Awaits ``seconds``, as an agent waiting on a model would; with ``marks``, records its runs
    there as ``waits_for_gate`` does (``start``, then ``end`` or ``cancelled``)."""
    import os

    def mark(what: str) -> None:
        if input_data.get("marks"):
            with open(input_data["marks"], "a") as out:
                out.write(f"{what} {ctx.execution_id} {ctx.attempt} {os.getpid()} {time.time():.6f}\n")

    mark("start")
    try:
        await asyncio.sleep(input_data.get("seconds", 1))
    except asyncio.CancelledError:
        mark("cancelled")
        raise
    mark("end")
    return {"slept": input_data.get("seconds", 1)}


async def async_boom(input_data, ctx):
    raise KeyError("missing")


class Greeter:
    """A class agent: built with its config, run with run()."""

    def __init__(self, config):
        self.greeting = config.settings.get("greeting", "hello")

    def run(self, input_data, ctx):
        return f"{self.greeting}, {input_data.get('name', 'world')}"


def waits_for_gate(input_data, ctx):
    """Runs until the file named by ``gate`` exists (or it is cancelled): tests open the gate to let it end.

    With ``marks`` it appends ``start``, ``end`` or ``cancelled`` lines (execution, attempt,
    pid, time) to that file: the agent's own record of when it ran, to check that no two
    attempts of an execution overlapped.
    """
    import os

    gate, marks = Path(input_data["gate"]), input_data.get("marks")

    def mark(what: str) -> None:
        if marks:
            with open(marks, "a") as out:
                out.write(f"{what} {ctx.execution_id} {ctx.attempt} {os.getpid()} {time.time():.6f}\n")

    mark("start")
    while not gate.exists():
        if ctx.sleep(0.05):
            mark("cancelled")
            return {"cancelled": True}
    mark("end")
    return {"gate": "opened"}


def writes_unstorable_text(input_data, ctx):
    """Logs, steps and returns text no database can hold: NUL and a lone surrogate."""
    ctx.progress(50, "step \x00 one \ud800")
    ctx.log("nul \x00 and surrogate \udfff")
    ctx.stream("token\x00")
    return {"text": "result \x00 with \ud83d lone half", "ok\x00": 1}


def stops_its_worker(input_data, ctx):
    """Asks its own worker process to stop (as SIGTERM would), then works until cancelled or done."""
    from executions import shutdown

    shutdown.request_stop()
    for _ in range(int(input_data.get("ticks", 400))):
        if ctx.sleep(0.05):
            return {"stopped": True}
    return {"finished": True}


def finishes_within_grace(input_data, ctx):
    from executions import shutdown

    shutdown.request_stop()
    ctx.sleep(0.1)
    return {"finished": True}


def stops_and_ignores_cancel(input_data, ctx):
    """Asks its worker to stop, then ignores cancellation for a while."""
    from executions import shutdown

    shutdown.request_stop()
    time.sleep(input_data.get("seconds", 6))
    return "too late"


# Agents that meet: each waits (up to 20 s) until ``expected`` of them have started, so all
# complete only if they all ran at once. ``peak`` records the most that ever ran together.
meeting = {"lock": threading.Lock(), "started": 0, "running": 0, "peak": 0}


def _meeting_enter() -> None:
    with meeting["lock"]:
        meeting["started"] += 1
        meeting["running"] += 1
        meeting["peak"] = max(meeting["peak"], meeting["running"])


def _meeting_leave() -> None:
    with meeting["lock"]:
        meeting["running"] -= 1


def meets_others(input_data, ctx):
    _meeting_enter()
    try:
        deadline = time.monotonic() + 20
        while meeting["started"] < input_data["expected"]:
            if time.monotonic() > deadline or ctx.sleep(0.01):
                return {"met": False}
        return {"met": True}
    finally:
        _meeting_leave()


async def async_meets_others(input_data, ctx):
    _meeting_enter()
    try:
        deadline = time.monotonic() + 20
        while meeting["started"] < input_data["expected"]:
            if time.monotonic() > deadline:
                return {"met": False}
            await asyncio.sleep(0.01)
        return {"met": True}
    finally:
        _meeting_leave()


def streams_then_waits_for_the_write(input_data, ctx):
    """Streams one token, then waits (up to 20 s) until the supervisor has taken it to write."""
    ctx.stream("first")
    deadline = time.monotonic() + 20
    while ctx._tracker._output and time.monotonic() < deadline:
        ctx.sleep(0.01)
    return {"written_while_running": not ctx._tracker._output}
