"""An I/O-bound agent for the benches: it waits, as an agent waiting on a model or a web service does."""

import asyncio


async def sleep_agent(input_data, ctx):
    """The Symphony agent (kind python, settings {"path": "bench.sleep.sleep_agent"}): ``await asyncio.sleep``
    for ``input_data["seconds"]`` (default 1), holding no thread and no CPU while it waits."""
    await asyncio.sleep(float((input_data or {}).get("seconds", 1.0)))
    return None
