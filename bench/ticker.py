"""The websocket fan-out benchmark's agent: a log line every ``interval`` seconds, each with the time it was written.

Settings ``{"path": "bench.ticker.ticker_agent"}``. Input: ``gate`` (a file it
waits for before the first line, so every client is connected and caught up
first), ``count`` lines, ``interval`` seconds between them.
"""

import os
import time


def ticker_agent(input_data, ctx):
    gate = input_data.get("gate")
    while gate and not os.path.exists(gate):
        if ctx.sleep(0.02):
            return None
    interval = float(input_data.get("interval", 0.075))
    started = time.monotonic()
    for number in range(int(input_data.get("count", 100))):
        ctx.log(f"tick {number} {time.time():.6f}")
        # Paced from the start, not from the previous line, so a slow flush does not slow the rate.
        if ctx.sleep(max(0.0, started + (number + 1) * interval - time.monotonic())):
            return None
    return {"ticks": int(input_data.get("count", 100))}
