"""What the pages make of stored values: shaped for display, and never a failure to render."""

import pytest

from executions import presenters
from executions.services import execution_submit


def test_pretty_json_shows_what_it_can_and_says_so_when_it_cannot():
    deep: list = []
    for _ in range(5_000):
        deep = [deep]

    assert presenters.pretty_json({"é": [1, None]}) == '{\n  "é": [\n    1,\n    null\n  ]\n}'
    assert presenters.pretty_json(deep) == "(cannot be shown: RecursionError)"
    assert presenters.pretty_json(10**5000) == "(cannot be shown: ValueError)"


def test_routing_summary_shows_scores_short_and_keeps_odd_values():
    summary = presenters.routing_summary(
        {"chosen": "a", "candidates": [{"agent": "a", "score": 0.91234}, {"agent": "b", "score": 10**400}]}
    )

    assert [(c["agent"], c["score"], c["chosen"]) for c in summary["candidates"]] == [
        ("a", "0.912", True),
        ("b", 10**400, False),
    ]
    assert presenters.routing_summary([1])["other"] == "[\n  1\n]"
    assert presenters.routing_summary(None) is None


def test_error_summary_takes_any_shape():
    assert presenters.error_summary("boom")["message"] == "boom"
    assert presenters.error_summary({"type": "E", "attempt": 2})["extra"] == {"attempt": 2}
    assert presenters.error_summary({"message": "m", "detail": {"field": "x", "codes": [1]}})["extra"] == {
        "detail": '{"field": "x", "codes": [1]}'
    }
    assert presenters.error_summary(None) is None


@pytest.mark.django_db
def test_rendered_text_has_no_lone_surrogate_or_nul(make_agent):
    execution = execution_submit(agent=make_agent("echo"))
    execution.steps = ["lone \ud800", "nul \x00"]  # in memory only: what a row written before may hold

    html = presenters.render_text("executions/detail.html#execution-steps", {"execution": execution})

    assert "lone \ufffd" in html and "nul \ufffd" in html
    html.encode("utf-8")
