"""The log's lines as the page and its socket render them: each line with its time, any stored shape."""

from datetime import UTC, datetime

from executions.models import EventKind, ExecutionEvent
from executions.templatetags.execution_log import log_lines

AT = datetime(2026, 12, 3, 17, 5, 9, 123456, tzinfo=UTC)


def event(pk: int, kind: str, data) -> ExecutionEvent:
    return ExecutionEvent(pk=pk, kind=kind, data=data, created_at=AT)


def test_each_line_carries_its_time_and_output_stays_inline():
    html = log_lines([event(1, EventKind.LOG, {"lines": ["a <b>", "c"]}), event(2, EventKind.OUTPUT, {"text": "tok"})])

    time = (
        '<time class="log-time" datetime="2026-12-03T17:05:09.123456+00:00" title="2026-12-03 17:05:09.123 UTC">'
        "17:05:09</time> "
    )
    assert html == (
        f'<div id="log-event-1" class="log-event"><div class="log-line">{time}a &lt;b&gt;</div>'
        f'<div class="log-line">{time}c</div></div>'
        '<span id="log-event-2" class="log-output" title="2026-12-03 17:05:09 UTC">tok</span>'
    )


def test_odd_stored_shapes_render_rather_than_fail():
    html = log_lines(
        [
            event(1, EventKind.LOG, ["not", "an", "object"]),
            event(2, EventKind.LOG, {"lines": "one string"}),
            event(3, EventKind.OUTPUT, {"text": None}),
            event(4, EventKind.LOG, {"lines": [], "dropped": 3}),
        ]
    )

    assert '<div id="log-event-1" class="log-event"></div>' in html
    assert "</time> one string</div>" in html
    assert '<span id="log-event-3" class="log-output" title="2026-12-03 17:05:09 UTC"></span>' in html
    assert "… 3 lines dropped (agent logged too fast)" in html
    assert log_lines(None) == ""
