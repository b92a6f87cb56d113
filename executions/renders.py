"""Renders shared by the sockets that want the same thing at about the same time.

Every socket on an execution's page re-renders the page's panels after a burst
of hints; with 200 viewers that was 200 renders of the same HTML. A socket asks
for a render with the time it was last hinted: a render of the same thing
(``key``) that started after that time already shows what the hint was about,
so it is shared; an older one is not, and a new render starts.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any


class SharedRenders:
    def __init__(self, keep_seconds: float = 10.0):
        self.keep_seconds = keep_seconds
        self.started = 0
        self._renders: dict[Hashable, tuple[float, asyncio.Future]] = {}

    async def get(self, key: Hashable, since: float, render: Callable[[], Awaitable[Any]]) -> Any:
        """The result of a render of ``key`` started after ``since`` (``time.monotonic()``), started now if none."""
        now = time.monotonic()
        entry = self._renders.get(key)
        if entry is None or entry[0] <= since:
            self._forget_before(now - self.keep_seconds)
            entry = self._renders[key] = (now, asyncio.ensure_future(render()))
            self.started += 1
        return await asyncio.shield(entry[1])

    def _forget_before(self, cutoff: float) -> None:
        for key, (started, future) in list(self._renders.items()):
            if started < cutoff and future.done():
                del self._renders[key]
