"""Conditions, map/until expressions and input templates: JMESPath, never ``eval``.

An expression is read once, at validation, and its parse is cached by text.
What a well-formed expression can still do wrong at run time (``length(`5`)``:
a function given the wrong type) raises ``ExpressionError`` from ``evaluate``
and ``render_template``; the engine records that as the step's failure.

Templates are any JSON value whose strings may hold ``{{ expr }}``. A string
that is exactly one placeholder becomes the expression's value, of any JSON
type; otherwise each placeholder is replaced by its value as text (strings as
they are, null as "", anything else as compact JSON). Mapping keys are left as
written. A literal ``{{`` is written as the JMESPath raw string ``{{ '{{' }}``.

Truthiness is JMESPath's (spec, "or expressions"): false, null, "", [] and {}
are false; every number, 0 included, is true.
"""

import json
from functools import lru_cache
from typing import Any

from django.conf import settings
from jmespath import exceptions as jmespath_errors
from jmespath.functions import Functions
from jmespath.parser import ParsedResult, Parser

MAX_EXPRESSION_CHARS = 2_000
# The parser and the interpreter both recurse over the tree; this keeps both far from
# Python's recursion limit whatever the caller's stack depth.
MAX_EXPRESSION_DEPTH = 60

OPEN, CLOSE = "{{", "}}"
_FUNCTIONS = Functions.FUNCTION_TABLE
_SHOWN_MAX_CHARS = 60


class ExpressionError(ValueError):
    """An expression or template that cannot be read or evaluated; the message says what and where."""


def _shown(text: str) -> str:
    return text if len(text) <= _SHOWN_MAX_CHARS else text[: _SHOWN_MAX_CHARS - 3] + "..."


def _parse_problem(text: str, error: jmespath_errors.ParseError) -> str:
    if isinstance(error, jmespath_errors.ArityError):  # raised before the parser knows where it is
        return str(error)
    if isinstance(error, jmespath_errors.IncompleteExpressionError) or error.token_type == "EOF":
        return f"it ends too early (column {len(text)})"
    if isinstance(error, jmespath_errors.LexerError):
        return f"{error.message} (column {error.lexer_position})"
    return f"{error.msg} (column {error.lex_position})"


def _nodes(tree: dict):
    """Every node of a parsed tree with its depth, without recursion."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        yield node, depth
        stack.extend((child, depth + 1) for child in node.get("children", ()))


def _check_functions(text: str, tree: dict) -> None:
    """Unknown functions and wrong argument counts, which JMESPath only reports when it reaches the call."""
    for node, depth in _nodes(tree):
        if depth > MAX_EXPRESSION_DEPTH:
            raise ExpressionError(f'"{_shown(text)}" is nested more than {MAX_EXPRESSION_DEPTH} levels deep.')
        if node["type"] != "function_expression":
            continue
        name, given = node["value"], len(node["children"])
        if name not in _FUNCTIONS:
            raise ExpressionError(f'"{_shown(text)}" calls {name}(), which is not a JMESPath function.')
        signature = _FUNCTIONS[name]["signature"]
        variadic = bool(signature) and signature[-1].get("variadic")
        if (variadic and given < len(signature)) or (not variadic and given != len(signature)):
            wanted = f"at least {len(signature)}" if variadic else str(len(signature))
            raise ExpressionError(f'"{_shown(text)}": {name}() takes {wanted} argument(s), not {given}.')


@lru_cache(maxsize=4096)
def _compile(text: str) -> ParsedResult:
    try:
        compiled = Parser().parse(text)
    except jmespath_errors.ParseError as exc:
        raise ExpressionError(f'"{_shown(text)}" is not a valid expression: {_parse_problem(text, exc)}.') from None
    except RecursionError:
        raise ExpressionError(f'"{_shown(text)}" is nested too deeply.') from None
    _check_functions(text, compiled.parsed)
    return compiled


def compile_expression(text: Any) -> ParsedResult:
    """The parsed expression, or ``ExpressionError`` saying what is wrong and at which column."""
    if not isinstance(text, str):
        raise ExpressionError(f"An expression must be text, not {type(text).__name__}.")
    if not text.strip():
        raise ExpressionError("An expression may not be empty.")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ExpressionError(f"An expression may be at most {MAX_EXPRESSION_CHARS} characters (got {len(text)}).")
    return _compile(text)


def evaluate(text: str, context: dict) -> Any:
    """The expression's value over ``context``; a run-time failure is an ``ExpressionError``."""
    compiled = compile_expression(text)
    try:
        return compiled.search(context)
    except jmespath_errors.JMESPathError as exc:
        raise ExpressionError(f'"{_shown(text)}" failed: {exc}') from None


def is_true(value: Any) -> bool:
    """JMESPath truthiness: false, null, "", [] and {} are false; everything else, 0 included, is true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, tuple, dict)):
        return len(value) > 0
    return True


# Templates -------------------------------------------------------------------


@lru_cache(maxsize=4096)
def _segments(template: str) -> tuple[tuple[bool, str], ...]:
    """``template`` as (is_expression, text) pieces.

    A placeholder ends at the first ``}}`` whose inside is a valid expression, so an
    expression may itself hold ``}}`` (``{{ {a: {b: x}} }}``).
    """
    pieces: list[tuple[bool, str]] = []
    position = 0
    while (start := template.find(OPEN, position)) != -1:
        if start > position:
            pieces.append((False, template[position:start]))
        inner_start = start + len(OPEN)
        end = template.find(CLOSE, inner_start)
        if end == -1:
            raise ExpressionError(f'"{_shown(template)}" opens "{{{{" at column {start} and never closes it.')
        if not template[inner_start:end].strip():
            raise ExpressionError(f'"{_shown(template)}" has an empty placeholder at column {start}.')
        first_error = None
        while end != -1 and end - inner_start <= MAX_EXPRESSION_CHARS:
            try:
                compile_expression(template[inner_start:end].strip())
                break
            except ExpressionError as exc:
                first_error = first_error or exc
                end = template.find(CLOSE, end + 1)
        else:
            raise first_error or ExpressionError(
                f'"{_shown(template)}": the placeholder at column {start} is longer than {MAX_EXPRESSION_CHARS} '
                "characters."
            )
        pieces.append((True, template[inner_start:end].strip()))
        position = end + len(CLOSE)
    if position < len(template):
        pieces.append((False, template[position:]))
    return tuple(pieces)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _render_string(template: str, context: dict) -> Any:
    pieces = _segments(template)
    if len(pieces) == 1 and pieces[0][0]:
        return evaluate(pieces[0][1], context)
    return "".join(_as_text(evaluate(text, context)) if is_expression else text for is_expression, text in pieces)


def _strings(template: Any):
    """Every string value of a JSON template (not mapping keys), without recursion and with a depth bound."""
    max_depth = settings.SYMPHONY_MAX_JSON_DEPTH
    stack = [(template, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            yield value
        elif isinstance(value, (dict, list, tuple)):
            if depth >= max_depth:
                raise ExpressionError(f"A template may be nested at most {max_depth} levels deep.")
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)


def check_template(template: Any) -> None:
    """``ExpressionError`` for the first placeholder that is unclosed or not a valid expression."""
    for text in _strings(template):
        _segments(text)


def render_template(template: Any, context: dict) -> Any:
    """A new value: ``template`` with every placeholder replaced by its value over ``context``."""
    max_depth = settings.SYMPHONY_MAX_JSON_DEPTH
    holder: list[Any] = [None]
    stack: list[tuple[Any, Any, Any, int]] = [(template, holder, 0, 0)]
    while stack:
        value, parent, key, depth = stack.pop()
        if isinstance(value, str):
            parent[key] = _render_string(value, context)
        elif isinstance(value, (dict, list, tuple)):
            if depth >= max_depth:
                raise ExpressionError(f"A template may be nested at most {max_depth} levels deep.")
            if isinstance(value, dict):
                rendered: Any = dict.fromkeys(value)  # keeps the keys' order whatever order they are filled in
                stack.extend((child, rendered, name, depth + 1) for name, child in value.items())
            else:
                rendered = [None] * len(value)
                stack.extend((child, rendered, index, depth + 1) for index, child in enumerate(value))
            parent[key] = rendered
        else:
            parent[key] = value
    return holder[0]


def template_expressions(template: Any) -> list[str]:
    """The expressions in a template's placeholders, in no particular order."""
    return [text for string in _strings(template) for is_expression, text in _segments(string) if is_expression]


# What an expression reads ----------------------------------------------------

# Where a node is evaluated: against the whole context, against ``steps``, or against anything else.
_ROOT, _STEPS, _OTHER = "root", "steps", "other"
# Node types whose children are all evaluated against the node's own value.
_SAME_VALUE = {
    "and_expression",
    "or_expression",
    "not_expression",
    "comparator",
    "multi_select_list",
    "multi_select_dict",
    "key_val_pair",
    "function_expression",
    "flatten",
    "index_expression",
}
# Node types whose first child is evaluated against the node's value and the rest against each element.
_PROJECTIONS = {"projection", "value_projection", "filter_projection"}


@lru_cache(maxsize=4096)
def _reads(text: str) -> tuple[frozenset[str], frozenset[str]]:
    """(names read from the context, step ids read through ``steps.<id>``) by an expression.

    Only fields evaluated against the context count: inside a projection, a filter or
    an ``&expression`` a name is looked up on each element, not on the context.
    """
    names: set[str] = set()
    steps: set[str] = set()

    def visit(node: dict, where: str) -> str:
        """Record what ``node`` reads when evaluated at ``where``; return where its value is."""
        kind, children = node["type"], node.get("children", [])
        if kind == "field":
            if where == _ROOT:
                names.add(node["value"])
                return _STEPS if node["value"] == "steps" else _OTHER
            if where == _STEPS:
                steps.add(node["value"])
            return _OTHER
        if kind in ("current", "identity"):
            return where
        if kind in ("subexpression", "pipe"):
            for child in children:
                where = visit(child, where)
            return where
        if kind in _PROJECTIONS:
            visit(children[0], where)
            for child in children[1:]:
                visit(child, _OTHER)
            return _OTHER
        if kind in _SAME_VALUE:
            for child in children:
                visit(child, _OTHER if child["type"] == "expref" else where)
            return _OTHER
        for child in children:  # expref, literal, index, slice: nothing read from here
            visit(child, _OTHER)
        return _OTHER

    visit(compile_expression(text).parsed, _ROOT)  # its depth is bounded by MAX_EXPRESSION_DEPTH
    return frozenset(names), frozenset(steps)


def expression_names(text: str) -> frozenset[str]:
    """The context names an expression reads (``input``, ``steps``, ``item`` ...)."""
    return _reads(text)[0]


def expression_step_refs(text: str) -> frozenset[str]:
    """The step ids an expression reads through ``steps.<id>``; reading ``steps`` as a whole names none."""
    return _reads(text)[1]


def template_step_refs(template: Any) -> set[str]:
    """The step ids a template's placeholders read."""
    refs: set[str] = set()
    for text in template_expressions(template):
        refs |= expression_step_refs(text)
    return refs
