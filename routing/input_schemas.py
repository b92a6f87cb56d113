"""Agents' input schemas: what input an agent accepts, as JSON Schema (Draft 2020-12).

Checked with the ``jsonschema`` library rather than by hand: JSON Schema is a
large standard (``$ref``, ``anyOf``, formats...) and the library is the
reference implementation. An agent without a schema accepts any JSON input.

The schema itself is checked when the agent is saved (``validate_input_schema``,
a validator on ``AgentConfig.input_schema``, so the admin, the API, the seed's
factory and ``symphony load-demo`` all refuse a bad one); an input is checked
against it at submit (``executions.validation.clean_input_for``) and by the
router, which passes over agents whose schema refuses the task's input.
"""

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from django.core.exceptions import ValidationError
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from jsonschema.exceptions import ValidationError as SchemaMismatch
from referencing.exceptions import Unresolvable

MAX_PROBLEMS = 10  # a wildly wrong input is told its first few problems, not hundreds


@dataclass(frozen=True)
class InputProblem:
    """One way the input does not fit: where (keys and indexes from the input's root) and why."""

    path: tuple[str | int, ...]
    message: str

    @property
    def where(self) -> str:
        """``input.items[2].name``: the place as a person reads it."""
        text = "input"
        for part in self.path:
            text += f"[{part}]" if isinstance(part, int) else f".{part}"
        return text

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


def _where(path) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path) or " (the root)"


def validate_input_schema(schema: Any) -> None:
    """Django validator: ``schema`` is a valid Draft 2020-12 JSON Schema (None: no schema)."""
    if schema is None:
        return
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise ValidationError(
            "Not a valid JSON Schema (Draft 2020-12): %(reason)s, at schema%(where)s.",
            code="invalid_schema",
            params={"reason": exc.message, "where": _where(exc.absolute_path)},
        ) from None


@lru_cache(maxsize=256)
def _validator(schema_text: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(schema_text), format_checker=Draft202012Validator.FORMAT_CHECKER)


def input_problems(schema: Any, value: Any) -> list[InputProblem]:
    """How ``value`` does not fit ``schema``: empty when it fits, or when there is no schema."""
    if schema is None:
        return []
    validator = _validator(json.dumps(schema, sort_keys=True))
    try:
        errors = sorted(validator.iter_errors(value), key=lambda error: list(map(str, error.absolute_path)))
    except Unresolvable as exc:  # a $ref to a document we do not fetch
        return [InputProblem((), f"the agent's input schema cannot be used: {exc}")]
    return [InputProblem(tuple(error.absolute_path), _message(error)) for error in errors[:MAX_PROBLEMS]]


def _message(error: SchemaMismatch) -> str:
    """The library's message, made short: it quotes the whole offending value, however large."""
    if error.validator in ("anyOf", "oneOf") and error.context:
        reasons = sorted({sub.message for sub in error.context})
        return "does not fit any of the allowed shapes (" + "; or ".join(reasons[:4]) + ")"
    message = error.message
    return message if len(message) <= 300 else message[:297] + "..."


def accepts(schema: Any, value: Any) -> bool:
    return not input_problems(schema, value)
