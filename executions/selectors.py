"""Reads for the pages, the websocket consumers and anyone else who needs more than a ``get()``.

The detail page and its live pushes render from the same ``execution_page``
dict, so a pushed fragment is exactly what a reload would show.
"""

import json
from typing import Any

from django.db.models import Count, QuerySet

from executions.models import EventKind, Execution, ExecutionEvent
from executions.models import ExecutionState as S
from executions.state import ACTIVE, WAITING
from routing.models import AgentConfig

LIST_LIMIT = 100
# Beyond this many log/output events the page shows the newest and says how many it left out.
PAGE_LOG_EVENTS = 300
# Events carrying text for the log panel; "output" is streamed model output, appended inline.
LOG_KINDS = (EventKind.LOG, EventKind.OUTPUT)


def execution_list(*, state: str | None = None, limit: int = LIST_LIMIT) -> list[Execution]:
    executions = Execution.objects.select_related("task", "agent").order_by("-id")
    if state:
        executions = executions.filter(state=state)
    return list(executions[:limit])


def execution_state_counts() -> list[dict]:
    """Every state in lifecycle order, with its label and how many executions are in it (zero included)."""
    counts = dict(Execution.objects.order_by().values_list("state").annotate(n=Count("id")))
    return [{"state": state, "label": label, "count": counts.get(state, 0)} for state, label in S.choices]


def execution_get(*, execution_id: int) -> Execution | None:
    return Execution.objects.select_related("task", "agent").filter(pk=execution_id).first()


def execution_exists(*, execution_id: int) -> bool:
    return Execution.objects.filter(pk=execution_id).exists()


def execution_events_after(*, execution_id: int, after_id: int, limit: int = 500) -> list[ExecutionEvent]:
    """The execution's events with ids above ``after_id``, oldest first: a reconnecting client's catch-up."""
    return list(ExecutionEvent.objects.filter(execution_id=execution_id, id__gt=after_id).order_by("id")[:limit])


def execution_log_events_after(*, execution_id: int, after_id: int, limit: int = 500) -> list[ExecutionEvent]:
    return list(
        ExecutionEvent.objects.filter(execution_id=execution_id, id__gt=after_id, kind__in=LOG_KINDS).order_by("id")[
            :limit
        ]
    )


def execution_last_event_id(*, execution_id: int) -> int:
    last = ExecutionEvent.objects.filter(execution_id=execution_id).order_by("-id").values_list("id", flat=True)
    return last.first() or 0


def _log_tail(execution_id: int, up_to_id: int) -> tuple[list[ExecutionEvent], int]:
    """The newest log events up to ``up_to_id``, oldest first, and how many older ones were left out."""
    events = ExecutionEvent.objects.filter(execution_id=execution_id, kind__in=LOG_KINDS, id__lte=up_to_id)
    tail = list(events.order_by("-id")[:PAGE_LOG_EVENTS])[::-1]
    omitted = events.filter(id__lt=tail[0].pk).count() if len(tail) == PAGE_LOG_EVENTS else 0
    return tail, omitted


def execution_history(*, execution_id: int) -> list[ExecutionEvent]:
    return list(ExecutionEvent.objects.filter(execution_id=execution_id, kind=EventKind.STATE).order_by("id"))


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)


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
    return f"{value:.3g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else value


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
        "extra": {key: value for key, value in error.items() if key not in known},
    }


def execution_page(*, execution_id: int, with_log: bool = True) -> dict | None:
    """Everything the detail page shows; the consumer re-renders panels from it on each change."""
    # Read the last id first: anything committed after it reaches the page by the websocket.
    last_event_id = execution_last_event_id(execution_id=execution_id)
    execution = execution_get(execution_id=execution_id)
    if execution is None:
        return None
    page = {
        "execution": execution,
        "cancellable": execution.state in WAITING | ACTIVE,
        "history": execution_history(execution_id=execution_id),
        "error": error_summary(execution.error),
        "routing": routing_summary(execution.routing),
        "result_json": pretty_json(execution.result) if execution.result is not None else "",
        "usage": execution.usage if isinstance(execution.usage, dict) else {"usage": execution.usage},
        "last_event_id": last_event_id,
    }
    if with_log:
        page["log_events"], page["log_omitted"] = _log_tail(execution_id, last_event_id)
    return page


def agents_enabled() -> QuerySet[AgentConfig]:
    return AgentConfig.objects.filter(enabled=True).order_by("name")
