"""What the pages and their live pushes show: stored values shaped for display, and rendering.

Reads stay in ``selectors``; this module turns what they return into what a
template needs, and renders templates into text that any browser or socket can
carry whatever the row holds (``render_text``).
"""

import json
from typing import Any

from django.template.loader import render_to_string
from django.utils import timezone

from executions import attempts, selectors
from executions.models import Execution, ExecutionEvent
from executions.state import ACTIVE, FINISHED, WAITING
from executions.storable import storable_json, storable_text
from executions.usage import usage_summary

# JSON longer than this is folded (<details>) on the page: the panels below it stay in sight.
FOLD_LINES = 20
FOLD_CHARS = 2_000


def render_text(template_name: str, context: dict, request=None) -> str:
    """``template_name`` rendered, with lone surrogates and NUL replaced by U+FFFD.

    New writes are clean, but a row written before (SQLite keeps a lone surrogate
    inside JSON) must still render: encoding one as UTF-8 would fail the page
    with a 500 and the websocket with a 1011 close.
    """
    return storable_text(render_to_string(template_name, context, request))[0]


def event_message(event: ExecutionEvent) -> dict:
    """The event as the JSON socket sends it, its text (lone surrogates, NUL) made decodable by any client."""
    return storable_json(event.as_message())[0]


def pretty_json(value: Any) -> str:
    try:
        return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    except (RecursionError, ValueError) as exc:  # nested past the recursion limit, an int too long to print
        return f"(cannot be shown: {type(exc).__name__})"


def json_block(value: Any) -> dict:
    """``value`` as pretty JSON for a <pre>, with its size and whether the page folds it."""
    text = pretty_json(value)
    lines = text.count("\n") + 1
    return {"text": text, "lines": lines, "folded": lines > FOLD_LINES or len(text) > FOLD_CHARS}


def progress_view(execution: Execution) -> dict:
    """The progress head: the agent's latest step and its percent, said so they read together.

    Both come from the agent (``ctx.progress(percent, step)``), reported when a step starts: the
    demo's "Step 2 of 10" comes with 10, the share of the work already done. So the percent is
    "done" and the step is what it is doing "now" (or where it stopped, once it has ended).
    """
    if not execution.current_step:
        label = ""
    elif execution.state in FINISHED:
        label = "Last step" if execution.state == "COMPLETED" else "Stopped at"
    else:
        label = "Now"
    percent = f"{execution.progress:.0f}"
    step = f"{label}: {execution.current_step}" if label else "No step yet"
    return {"label": label, "percent": percent, "text": f"{percent}% done", "summary": f"{percent}% done, {step}"}


def _candidate_load(candidate: dict) -> Any:
    """The router writes ``load`` or its parts (running, queued, capacity); show whichever is there."""
    if candidate.get("load") not in (None, ""):
        return candidate["load"]
    parts = [f"{candidate[key]} {key}" for key in ("running", "queued") if candidate.get(key) is not None]
    if candidate.get("capacity"):
        parts.append(f"of {candidate['capacity']}")
    if candidate.get("saturated"):
        parts.append("(full)")
    return " ".join(parts)


def _score(value: Any) -> Any:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return f"{value:.3g}"
        except OverflowError:  # an int beyond any float
            return value
    return value


def routing_summary(routing: Any) -> dict | None:
    """``execution.routing`` shaped for the Routing panel, tolerating missing keys and odd values.

    Keys the panel does not show are kept under ``other``, so nothing the router wrote is hidden.
    """
    if routing is None or routing == {}:
        return None
    if not isinstance(routing, dict):
        return {"strategy": "", "chosen": "", "reason": "", "candidates": [], "other": pretty_json(routing)}
    chosen = routing.get("chosen")
    candidates = []
    raw_candidates = routing.get("candidates")
    for candidate in raw_candidates if isinstance(raw_candidates, list) else []:
        if not isinstance(candidate, dict):
            candidate = {"agent": str(candidate)}
        candidates.append(
            {
                "agent": str(candidate.get("agent") or ""),
                "score": _score(candidate.get("score")),
                "load": _candidate_load(candidate),
                "note": candidate.get("note") or "",
                "chosen": chosen is not None and candidate.get("agent") == chosen,
            }
        )
    shown = {"strategy", "chosen", "chosen_id", "reason", "candidates"}
    extra = {key: value for key, value in routing.items() if key not in shown}
    return {
        "strategy": str(routing.get("strategy") or ""),
        "chosen": str(chosen or ""),
        "reason": str(routing.get("reason") or ""),
        "candidates": candidates,
        "other": pretty_json(extra) if extra else "",
    }


def error_summary(error: Any) -> dict | None:
    if not error:
        return None
    if not isinstance(error, dict):
        return {"type": "", "message": str(error), "traceback": "", "extra": {}}
    known = {"type", "message", "traceback"}
    return {
        "type": str(error.get("type") or ""),
        "message": str(error.get("message") or ""),
        "traceback": str(error.get("traceback") or ""),
        "extra": {key: _readable(value) for key, value in error.items() if key not in known},
    }


def _readable(value: Any) -> Any:
    """A scalar as it is; a list or object as compact JSON, not Python's repr."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (RecursionError, ValueError) as exc:
        return f"(cannot be shown: {type(exc).__name__})"


def execution_page(*, execution_id: int, with_log: bool = True) -> dict | None:
    """Everything the detail page shows; the consumer re-renders panels from it on each change.

    Fixed queries whatever the history's length: the last event id, the execution, its state
    events (history and attempts) and, ``with_log``, the log's tail (split by attempt here).
    """
    # Read the last id first: anything committed after it reaches the page by the websocket.
    last_event_id = selectors.execution_last_event_id(execution_id=execution_id)
    execution = selectors.execution_get(execution_id=execution_id)
    if execution is None:
        return None
    history = selectors.execution_history(execution_id=execution_id)
    page = {
        "execution": execution,
        "cancellable": execution.state in WAITING | ACTIVE,
        "finished": execution.state in FINISHED,
        "history": history,
        "attempts": attempts.attempts_from(history, now=timezone.now()),
        "progress": progress_view(execution),
        "error": error_summary(execution.error),
        "routing": routing_summary(execution.routing),
        "input": json_block(execution.task.input_data),
        "result": json_block(execution.result) if execution.result is not None else None,
        "usage": usage_summary(execution.usage, execution.agent.settings),
        "last_event_id": last_event_id,
    }
    if with_log:
        log_events, page["log_omitted"] = selectors.execution_log_tail(
            execution_id=execution_id, up_to_id=last_event_id
        )
        page["log_attempts"] = log_by_attempt(page["attempts"], log_events, up_to_id=last_event_id)
        # With the oldest lines left out, an attempt that started before the first line shown may have had some.
        page["log_cut_before"] = log_events[0].pk if page["log_omitted"] else 0
    return page


def log_by_attempt(all_attempts: list, log_events: list, *, up_to_id: int) -> list[tuple]:
    """(attempt, its log events) for each attempt started by event ``up_to_id``: what the page shows
    at that id; the socket adds the attempts and lines after it."""
    groups = attempts.split_log(all_attempts, log_events)
    return [(attempt, groups.get(attempt.start_id, [])) for attempt in all_attempts if attempt.start_id <= up_to_id]


def log_append(all_attempts: list, log_events: list, *, shown_up_to: int) -> list[tuple]:
    """What the socket adds to a log the page showed up to event ``shown_up_to``: (attempt, its new
    log events, whether the attempt is new to the page) in order. A new attempt comes whole, as its
    own section; an attempt the page has gets its new lines appended."""
    groups = attempts.split_log(all_attempts, log_events)
    return [
        (attempt, groups.get(attempt.start_id, []), attempt.start_id > shown_up_to)
        for attempt in all_attempts
        if attempt.start_id > shown_up_to or attempt.start_id in groups
    ]
