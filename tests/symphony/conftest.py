"""Fixtures of the symphony app's tests: a clock that moves only when told, and the websocket tests' own."""

from datetime import timedelta

import pytest
from django.utils import timezone


class Clock:
    def __init__(self):
        self.now = timezone.now()

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    """``timezone.now()`` stands still until ``clock.advance(...)``: expiry and last-used without waiting."""
    clock = Clock()
    monkeypatch.setattr(timezone, "now", lambda: clock.now)
    return clock
