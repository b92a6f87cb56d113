"""What ``task_create`` and ``execution_submit`` accept: the one place every interface's input is checked.

The form, the CLI, the admin and the Python API pass values through; a value
out of range is a ``SubmitError`` naming the field, raised before anything is
written.

Text, anywhere (names, tags, and every string and key inside input and
metadata), must be valid Unicode that both databases store:

- a lone surrogate is refused as "not valid UTF-8": it only comes from bytes
  that were not UTF-8 (the CLI decodes argv with surrogateescape) or from an
  unpaired ``\\ud800`` escape in JSON, and no character stands for it;
- NUL is valid UTF-8 that PostgreSQL cannot hold, so it is replaced with U+FFFD
  (``executions.storable``) and the replacement is logged as a warning.
"""

import json
import logging
import math
import numbers
import re
from decimal import Decimal
from typing import Any

from django.conf import settings

from executions.storable import storable_json, storable_text
from routing.decisions import RoutingStrategy
from routing.input_schemas import InputProblem, input_problems

logger = logging.getLogger(__name__)

NAME_MAX_CHARS = 200  # Task.name's max_length
DESCRIPTION_MAX_CHARS = 10_000
TAGS_MAX = 50
TAG_MAX_CHARS = 100
# A concurrency group's max_concurrent: far above any pool of workers, low enough to catch a slip.
MAX_CONCURRENT_LIMIT = 10_000

_SURROGATE = re.compile("[\ud800-\udfff]")
_SHOWN_MAX_CHARS = 40


class SubmitError(ValueError):
    """A submit that cannot be accepted; nothing was written.

    ``field`` names the ``execution_submit``/``task_create`` keyword that was refused, when one was.
    """

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.field = field


class InputRefused(SubmitError):
    """The input does not fit the agent's input schema; ``problems`` says where and why, each."""

    def __init__(self, agent_name: str, problems: list[InputProblem]):
        shown = "; ".join(str(problem) for problem in problems[:3])
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        super().__init__(
            f"The input does not fit the input schema of agent {agent_name!r}: {shown}{more}.", field="input"
        )
        self.problems = problems


def _shown(value: Any) -> str:
    """A scalar for an error message: short, and printable whatever it holds (``repr`` escapes surrogates)."""
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than Python will print
        return "a number too large to show"
    return text if len(text) <= _SHOWN_MAX_CHARS else text[: _SHOWN_MAX_CHARS - 3] + "..."


def _storable(text: str, field: str) -> tuple[str, int]:
    """``text`` with NUL replaced, and how many were; a lone surrogate is refused."""
    surrogate = _SURROGATE.search(text)
    if surrogate:
        raise SubmitError(
            f"{field} is not valid UTF-8: it holds {_shown(surrogate.group())}, a lone surrogate "
            "(from bytes that are not UTF-8, or an unpaired \\u escape).",
            field=field,
        )
    return storable_text(text)


def _note_replaced(field: str, count: int) -> None:
    if count:
        logger.warning("Replaced %d NUL character(s) in %s with U+FFFD: PostgreSQL cannot store NUL.", count, field)


def clean_text(value: Any, field: str, *, max_chars: int, required: bool = False, strip: bool = False) -> str:
    if not isinstance(value, str):
        raise SubmitError(f"{field} must be text, not {type(value).__name__}.", field=field)
    text, replaced = _storable(value, field)
    text = text.strip() if strip else text
    if required and not text.strip():
        raise SubmitError(f"{field} may not be empty.", field=field)
    if len(text) > max_chars:
        raise SubmitError(f"{field} may be at most {max_chars} characters (got {len(text)}).", field=field)
    _note_replaced(field, replaced)
    return text


def clean_tags(value: Any, field: str = "tags") -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise SubmitError(f"{field} must be a list of text, not {type(value).__name__}.", field=field)
    if len(value) > TAGS_MAX:
        raise SubmitError(f"{field} may hold at most {TAGS_MAX} tags (got {len(value)}).", field=field)
    return [clean_text(tag, field, max_chars=TAG_MAX_CHARS, required=True, strip=True) for tag in value]


def clean_strategy(value: Any, field: str = "routing_strategy") -> str:
    """A routing strategy's name, or "" for the site default."""
    if value in (None, ""):
        return ""
    if not isinstance(value, str) or value not in RoutingStrategy.values:
        known = ", ".join(RoutingStrategy.values)
        raise SubmitError(f"{field} must be one of {known} (got {_shown(value)}).", field=field)
    return value


def _json_nuls(value: Any, field: str, max_depth: int) -> int:
    """Walk ``value`` without recursion: refuse nesting past ``max_depth`` and lone surrogates; count NULs.

    Iterative so that any depth (or a container holding itself) ends in a refusal, not a RecursionError.
    """
    nuls = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            nuls += _storable(item, field)[1]
        elif isinstance(item, (dict, list, tuple)):
            if depth > max_depth:
                raise SubmitError(f"{field} is nested more than {max_depth} levels deep.", field=field)
            if isinstance(item, dict):
                for key, child in item.items():
                    stack.append((key, depth))
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
    return nuls


def clean_json(value: Any, field: str) -> Any:
    """``value`` if it is JSON within the depth and size limits, with NUL replaced in every string."""
    max_depth = settings.SYMPHONY_MAX_JSON_DEPTH
    max_bytes = settings.SYMPHONY_MAX_INPUT_BYTES
    nuls = _json_nuls(value, field, max_depth)
    try:
        encoded = json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise SubmitError(f"{field} must be JSON: {exc}", field=field) from exc
    size = len(encoded.encode("utf-8"))
    if size > max_bytes:
        raise SubmitError(f"{field} may be at most {max_bytes} bytes as JSON (got {size}).", field=field)
    if nuls:
        value, replaced = storable_json(value)  # recursion is safe here: the depth is bounded above
        _note_replaced(field, replaced)
    return value


def clean_json_object(value: Any, field: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SubmitError(f"{field} must be a JSON object, not {type(value).__name__}.", field=field)
    return clean_json(value, field)


def clean_whole_number(value: Any, field: str, *, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SubmitError(f"{field} must be a whole number, not {_shown(value)}.", field=field)
    if not low <= value <= high:
        raise SubmitError(f"{field} must be at least {low} and at most {high} (got {_shown(value)}).", field=field)
    return int(value)


def clean_priority(value: Any, field: str = "priority") -> int:
    return clean_whole_number(value, field, low=settings.SYMPHONY_MIN_PRIORITY, high=settings.SYMPHONY_MAX_PRIORITY)


def clean_max_attempts(value: Any, field: str = "max_attempts") -> int:
    return clean_whole_number(value, field, low=1, high=settings.SYMPHONY_MAX_ATTEMPTS_LIMIT)


def clean_max_concurrent(value: Any, field: str = "max_concurrent") -> int:
    """How many of a group may run at once; 0 for no limit."""
    return clean_whole_number(value, field, low=0, high=MAX_CONCURRENT_LIMIT)


def clean_timeout(value: Any, field: str = "timeout") -> float:
    """Seconds as a float: finite, above zero and at most ``SYMPHONY_MAX_TIMEOUT``."""
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, Decimal)):
        raise SubmitError(f"{field} must be a number of seconds, not {_shown(value)}.", field=field)
    try:
        seconds = float(value)
    except (OverflowError, ValueError):  # an int beyond any float, a signalling Decimal NaN
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        raise SubmitError(f"{field} must be a positive number of seconds (got {_shown(value)}).", field=field)
    if seconds > settings.SYMPHONY_MAX_TIMEOUT:
        raise SubmitError(
            f"{field} may not exceed {settings.SYMPHONY_MAX_TIMEOUT:g} seconds (got {_shown(value)}).", field=field
        )
    return seconds


def clean_input_for(agent, value: Any) -> None:
    """Refuse ``value`` unless it fits ``agent``'s input schema (``routing.input_schemas``).

    Checked at submit, so an input the agent can never take is refused up front
    with the place and the reason, instead of failing attempt after attempt.
    """
    problems = input_problems(agent.input_schema, value)
    if problems:
        raise InputRefused(agent.name, problems)
