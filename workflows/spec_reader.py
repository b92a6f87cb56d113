"""Reading and checking a workflow definition: the work behind ``workflows.spec.parse_spec``.

Every check is linear in the number of steps (dicts, sets, an iterative
topological sort, ancestor sets as bit masks) and never recursive, since the
benchmark builds 10,000-step chains and fan-outs.
"""

import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from django.conf import settings

from executions.validation import (
    DESCRIPTION_MAX_CHARS,
    SubmitError,
    clean_json,
    clean_priority,
    clean_strategy,
    clean_tags,
    clean_text,
    clean_timeout,
    clean_whole_number,
)
from workflows.expressions import (
    MAX_EXPRESSION_CHARS,
    ExpressionError,
    check_template,
    compile_expression,
    expression_names,
    expression_step_refs,
    template_expressions,
)
from workflows.spec import (
    AGENT_NAME_MAX_CHARS,
    APPROVAL_KEYS,
    CONTEXT_NAMES,
    KINDS,
    LOOP_NAMES,
    MAP_NAMES,
    MAX_CONCURRENT_LIMIT,
    MAX_ITERATIONS_LIMIT,
    NAME,
    NAME_MAX_CHARS,
    NOT_FOR_APPROVAL,
    ON_FAILURE,
    ROUTE_KEYS,
    STEP_ID,
    STEP_KEYS,
    USERNAME,
    USERNAME_MAX_CHARS,
    WORKFLOW_KEYS,
    ApprovalSpec,
    Problem,
    RouteSpec,
    SpecError,
    StepSpec,
    WorkflowSpec,
    topological_sort,
)

_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


# Reading the source ----------------------------------------------------------


def _fail(message: str, field_name: str | None = None) -> SpecError:
    return SpecError([Problem(None, field_name, message)])


def _refuse_shared(data: Any) -> None:
    """Refuse a YAML alias of a list or mapping, and keys that are not text.

    An alias shares one object between places, so ten nested aliases of ten make a
    value with 10**10 leaves in a few hundred bytes of text (the "billion laughs").
    """
    seen: set[int] = set()
    stack = [data]
    while stack:
        value = stack.pop()
        if not isinstance(value, dict | list):
            continue
        if id(value) in seen:
            raise _fail("a list or mapping is repeated through a YAML alias (*name); write each one out.")
        seen.add(id(value))
        if isinstance(value, dict):
            for key in value:
                if not isinstance(key, str):
                    raise _fail(
                        f"every key must be text; YAML reads {key!r} as {type(key).__name__} (quote it to keep text)."
                    )
            stack.extend(value.values())
        else:
            stack.extend(value)


def load_source(source: Any, max_bytes: int) -> Any:
    if not isinstance(source, str):
        return source
    size = len(source.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise _fail(f"a definition may be at most {max_bytes} bytes (got {size}).")
    try:
        return json.loads(source)
    except RecursionError:
        raise _fail("the definition is nested too deeply.") from None
    except ValueError:
        pass  # not JSON: read it as YAML, which reports its own errors with the line
    try:
        data = yaml.load(source, Loader=_YAML_LOADER)  # a safe loader: plain data, no Python objects
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise _fail(f"not valid JSON or YAML{where}: {problem}.") from None
    except RecursionError:
        raise _fail("the definition is nested too deeply.") from None
    _refuse_shared(data)
    return data


def _unknown_keys(data: dict, allowed: tuple[str, ...]) -> list[tuple[str, str]]:
    """(key, message) for each key not in ``allowed``, suggesting the closest allowed one (a typo, most likely)."""
    found = []
    for key in data:
        if key not in allowed:
            close = difflib.get_close_matches(str(key), allowed, n=1)
            hint = f'did you mean "{close[0]}"? ' if close else ""
            found.append((str(key), f"unknown field; {hint}allowed: {', '.join(allowed)}."))
    return found


# Checking it -----------------------------------------------------------------

_INVALID = object()  # a field whose problem is already recorded


@dataclass(frozen=True)
class _At:
    """Which step a problem is about: its id when it has a usable one, and its position in the file."""

    step: str | None
    position: int | None


_WORKFLOW = _At(None, None)


class SpecReader:
    """Reads one definition, recording every problem instead of stopping at the first."""

    def __init__(self, *, agent_exists: Callable[[str], bool] | None, max_steps: int):
        self.agent_exists = agent_exists
        self.max_steps = max_steps
        self.problems: list[Problem] = []
        self.position: dict[str, int] = {}  # every usable step id
        self.depends_on: dict[str, tuple[str, ...]] = {}
        self.reads: dict[str, list[tuple[str, frozenset[str]]]] = {}  # (field, step ids it reads)
        self.agents: dict[str, list[_At]] = {}

    def add(self, at: _At, field_name: str | None, message: str) -> None:
        self.problems.append(Problem(at.step, field_name, message, at.position))

    def clean(self, at: _At, field_name: str, check: Callable, *args, **kwargs) -> Any:
        """``check``'s cleaned value, or ``_INVALID`` with its refusal recorded against ``field_name``."""
        try:
            return check(*args, **kwargs)
        except (SubmitError, ExpressionError) as exc:
            self.add(at, field_name, str(exc))
            return _INVALID

    # The workflow ---------------------------------------------------------------

    def read(self, data: Any) -> WorkflowSpec:
        if not isinstance(data, dict):
            raise _fail(f"a definition is a mapping with a name and steps, not {type(data).__name__}.")
        for key, message in _unknown_keys(data, WORKFLOW_KEYS):
            self.add(_WORKFLOW, key, message)
        name = data.get("name")
        if name is None:
            self.add(_WORKFLOW, "name", "name is missing.")
            name = _INVALID
        else:
            name = self.clean(
                _WORKFLOW, "name", clean_text, name, "name", max_chars=NAME_MAX_CHARS, required=True, strip=True
            )
        if name is not _INVALID and not NAME.match(name):
            self.add(_WORKFLOW, "name", f'name may hold only letters, digits, "-" and "_" (got {name!r}).')
        description = data.get("description") or ""
        description = self.clean(
            _WORKFLOW, "description", clean_text, description, "description", max_chars=DESCRIPTION_MAX_CHARS
        )
        steps = self.read_steps(data.get("steps"))
        if self.problems:
            self.problems.sort(key=lambda problem: -1 if problem.position is None else problem.position)
            raise SpecError(self.problems)
        return WorkflowSpec(name=name, description=description, steps=tuple(steps))

    def read_steps(self, raw_steps: Any) -> list[StepSpec]:
        if raw_steps is None:
            self.add(_WORKFLOW, "steps", "steps is missing: a workflow needs a list of steps.")
            return []
        if not isinstance(raw_steps, list | tuple):
            self.add(_WORKFLOW, "steps", f"steps must be a list of steps, not {type(raw_steps).__name__}.")
            return []
        if not raw_steps:
            self.add(_WORKFLOW, "steps", "a workflow needs at least one step.")
        if len(raw_steps) > self.max_steps:
            self.add(_WORKFLOW, "steps", f"a workflow may have at most {self.max_steps} steps (got {len(raw_steps)}).")
            return []
        steps = [step for position, raw in enumerate(raw_steps) if (step := self.read_step(raw, position))]
        self.check_graph()
        return steps

    # One step -------------------------------------------------------------------

    def read_id(self, raw: dict, position: int) -> str | None:
        at = _At(None, position)
        if raw.get("id") is None:
            self.add(at, "id", "id is missing.")
            return None
        step_id = self.clean(at, "id", clean_text, raw["id"], "id", max_chars=NAME_MAX_CHARS, required=True)
        if step_id is _INVALID:
            return None
        if not STEP_ID.match(step_id):
            self.add(at, "id", f"id must be a lowercase letter then a-z, 0-9, - or _ (got {step_id!r}).")
            return None
        if step_id in self.position:
            self.add(_At(step_id, position), "id", f"another step has this id (step #{self.position[step_id] + 1}).")
            return None
        self.position[step_id] = position
        return step_id

    def read_step(self, raw: Any, position: int) -> StepSpec | None:
        if not isinstance(raw, dict):
            self.add(_At(None, position), None, f"a step must be a mapping, not {type(raw).__name__}.")
            return None
        problems_before = len(self.problems)
        step_id = self.read_id(raw, position)
        at = _At(step_id, position)
        for key, message in _unknown_keys(raw, STEP_KEYS):
            self.add(at, key, message)
        given = {key: raw[key] for key in STEP_KEYS if key != "id" and raw.get(key) is not None}
        fields = self.read_kind(at, given)
        names = CONTEXT_NAMES | (MAP_NAMES if "map" in given else frozenset())
        names |= LOOP_NAMES if "until" in given else frozenset()
        reads: list[tuple[str, frozenset[str]]] = []
        if "input" in given:
            value = self.clean(at, "input", clean_json, given["input"], "input")
            fields["input"] = self.template(at, "input", value, names, reads)
        if isinstance(fields.get("route"), RouteSpec):
            self.template(at, "route.query", fields["route"].query, names, reads)
        for key, context in (("condition", names), ("map", CONTEXT_NAMES), ("until", names | {"output"})):
            if key in given:
                fields[key] = self.expression(at, key, given[key], context, reads)
        fields["depends_on"] = self.read_depends_on(at, given.get("depends_on", ()))
        fields.update(self.read_numbers(at, given))
        self.check_combinations(at, given)
        if step_id is not None:
            self.depends_on[step_id] = fields["depends_on"]
            self.reads[step_id] = reads
        if len(self.problems) > problems_before or step_id is None:
            return None
        return StepSpec(id=step_id, **fields)

    def read_kind(self, at: _At, given: dict) -> dict[str, Any]:
        kinds = [kind for kind in KINDS if kind in given]
        if not kinds:
            self.add(at, "agent", 'a step needs one of "agent", "route" or "approval".')
        elif len(kinds) > 1:
            both = " and ".join(kinds)
            self.add(at, kinds[1], f"a step has exactly one of agent, route and approval; this one has {both}.")
        fields: dict[str, Any] = {}
        if "agent" in given:
            fields["agent"] = self.clean(
                at, "agent", clean_text, given["agent"], "agent", max_chars=AGENT_NAME_MAX_CHARS, required=True
            )
            if fields["agent"] is not _INVALID:
                self.agents.setdefault(fields["agent"], []).append(at)
        if "route" in given:
            fields["route"] = self.read_route(at, given["route"])
        if "approval" in given:
            fields["approval"] = self.read_approval(at, given["approval"])
        return fields

    def read_route(self, at: _At, route: Any) -> RouteSpec | object:
        if not isinstance(route, dict):
            self.add(at, "route", f"route must be a mapping with strategy, tags and query, not {type(route).__name__}.")
            return _INVALID
        for key, message in _unknown_keys(route, ROUTE_KEYS):
            self.add(at, f"route.{key}", message)
        strategy = self.clean(at, "route.strategy", clean_strategy, route.get("strategy"), "route.strategy")
        tags = self.clean(at, "route.tags", clean_tags, route.get("tags"), "route.tags")
        query = route.get("query")
        if query is not None:
            query = self.clean(at, "route.query", clean_text, query, "route.query", max_chars=DESCRIPTION_MAX_CHARS)
        if _INVALID in (strategy, tags, query):
            return _INVALID
        return RouteSpec(strategy=str(strategy), tags=tuple(tags), query=query)

    def read_approval(self, at: _At, approval: Any) -> ApprovalSpec | object:
        if not isinstance(approval, dict):
            kind = type(approval).__name__
            self.add(at, "approval", f"approval must be a mapping with message, approvers and group, not {kind}.")
            return _INVALID
        for key, message in _unknown_keys(approval, APPROVAL_KEYS):
            self.add(at, f"approval.{key}", message)
        message = approval.get("message") or ""
        message = self.clean(
            at, "approval.message", clean_text, message, "approval.message", max_chars=DESCRIPTION_MAX_CHARS
        )
        approvers = approval.get("approvers") or []
        if not isinstance(approvers, list | tuple):
            kind = type(approvers).__name__
            self.add(at, "approval.approvers", f"approvers must be a list of usernames, not {kind}.")
            approvers = _INVALID
        else:
            for username in approvers:
                if not isinstance(username, str) or not USERNAME.match(username) or len(username) > USERNAME_MAX_CHARS:
                    self.add(at, "approval.approvers", f"{username!r} is not a username.")
                    approvers = _INVALID
                    break
        group = approval.get("group")
        if group is not None:
            group = self.clean(
                at, "approval.group", clean_text, group, "approval.group", max_chars=USERNAME_MAX_CHARS, required=True
            )
        if _INVALID in (message, approvers, group):
            return _INVALID
        return ApprovalSpec(message=message, approvers=tuple(approvers), group=group)

    def template(self, at: _At, field_name: str, value: Any, names: frozenset, reads: list) -> Any:
        if value is _INVALID or value is None:
            return value
        try:
            check_template(value)
            expressions = template_expressions(value)
        except ExpressionError as exc:
            self.add(at, field_name, str(exc))
            return _INVALID
        refs: set[str] = set()
        for text in expressions:
            self.check_names(at, field_name, expression_names(text), names)
            refs |= expression_step_refs(text)
        reads.append((field_name, frozenset(refs)))
        return value

    def expression(self, at: _At, field_name: str, value: Any, names: frozenset, reads: list) -> Any:
        text = self.clean(at, field_name, clean_text, value, field_name, max_chars=MAX_EXPRESSION_CHARS, required=True)
        if text is _INVALID or self.clean(at, field_name, compile_expression, text) is _INVALID:
            return _INVALID
        self.check_names(at, field_name, expression_names(text), names)
        reads.append((field_name, expression_step_refs(text)))
        return text

    def check_names(self, at: _At, field_name: str, read: frozenset[str], names: frozenset[str]) -> None:
        for name in sorted(read - names):
            known = ", ".join(sorted(names))
            self.add(at, field_name, f'reads "{name}", which is not in its context (it has: {known}).')

    def read_depends_on(self, at: _At, value: Any) -> tuple[str, ...]:
        if not isinstance(value, list | tuple):
            hint = f" (write [{value}])" if isinstance(value, str) else ""
            self.add(at, "depends_on", f"depends_on must be a list of step ids, not {type(value).__name__}{hint}.")
            return ()
        found: dict[str, None] = {}
        for dependency in value:
            if not isinstance(dependency, str):
                self.add(at, "depends_on", f"{dependency!r} is not a step id.")
            elif dependency == at.step:
                self.add(at, "depends_on", "a step cannot depend on itself.")
            elif dependency in found:
                self.add(at, "depends_on", f'"{dependency}" is listed twice.')
            else:
                found[dependency] = None
        return tuple(found)

    def read_numbers(self, at: _At, given: dict) -> dict[str, Any]:
        attempts_limit = settings.SYMPHONY_MAX_ATTEMPTS_LIMIT
        checks = {
            "retries": lambda value: clean_whole_number(value, "retries", low=0, high=attempts_limit - 1),
            "timeout": clean_timeout,
            "priority": clean_priority,
            "max_concurrent": lambda value: clean_whole_number(
                value, "max_concurrent", low=1, high=MAX_CONCURRENT_LIMIT
            ),
            "max_iterations": lambda value: clean_whole_number(
                value, "max_iterations", low=1, high=MAX_ITERATIONS_LIMIT
            ),
        }
        fields = {key: self.clean(at, key, check, given[key]) for key, check in checks.items() if key in given}
        if "on_failure" in given:
            if given["on_failure"] in ON_FAILURE:
                fields["on_failure"] = given["on_failure"]
            else:
                self.add(at, "on_failure", f"on_failure must be fail or continue (got {given['on_failure']!r}).")
        return fields

    def check_combinations(self, at: _At, given: dict) -> None:
        if "map" in given and "until" in given:
            self.add(at, "until", '"map" and "until" exclude each other: a step is mapped or looped, not both.')
        if "approval" in given:
            for key in NOT_FOR_APPROVAL:
                if key in given:
                    self.add(at, key, f'an approval step runs no agent, so it takes no "{key}".')
            return
        if "until" in given and "max_iterations" not in given:
            self.add(at, "max_iterations", f'"until" needs "max_iterations" (1 to {MAX_ITERATIONS_LIMIT}) to bound it.')
        if "max_iterations" in given and "until" not in given:
            self.add(at, "max_iterations", 'only a loop (a step with "until") takes "max_iterations".')
        if "max_concurrent" in given and "map" not in given:
            self.add(at, "max_concurrent", 'only a mapped step (a step with "map") takes "max_concurrent".')

    # Across steps ---------------------------------------------------------------

    def at(self, step_id: str) -> _At:
        return _At(step_id, self.position[step_id])

    def check_graph(self) -> None:
        known: dict[str, tuple[str, ...]] = {}
        for step_id, dependencies in self.depends_on.items():
            for dependency in dependencies:
                if dependency not in self.position:
                    self.add(self.at(step_id), "depends_on", f'unknown step "{dependency}".')
            known[step_id] = tuple(dependency for dependency in dependencies if dependency in self.position)
        order, left_over = topological_sort(list(self.depends_on), known)
        self.report_cycles(left_over, known)
        self.check_agents()
        self.check_reads(known, order)

    def report_cycles(self, left_over: set[str], known: dict[str, tuple[str, ...]]) -> None:
        """One problem per cycle, walking from each left-over step along its left-over dependencies.

        A step is left over by the topological sort only while one of its dependencies
        is, so the walk always reaches a cycle; each step is walked once.
        """
        walked: set[str] = set()
        for start in sorted(left_over, key=self.position.__getitem__):
            path: dict[str, None] = {}
            step_id = start
            while step_id not in walked and step_id not in path:
                path[step_id] = None
                step_id = next(dependency for dependency in known[step_id] if dependency in left_over)
            if step_id in path:
                cycle = list(path)[list(path).index(step_id) :]
                first = min(range(len(cycle)), key=lambda index: self.position[cycle[index]])
                cycle = cycle[first:] + cycle[:first]
                self.add(self.at(cycle[0]), "depends_on", f"cycle: {_cycle_text(cycle)} (each depends on the next).")
            walked.update(path)

    def check_agents(self) -> None:
        if self.agent_exists is None:
            return
        for name, places in self.agents.items():
            if not self.agent_exists(name):
                for at in places:
                    self.add(at, "agent", f'unknown agent "{name}".')

    def check_reads(self, known: dict[str, tuple[str, ...]], order: list[str]) -> None:
        """Every ``steps.<id>`` read must name a step this one depends on, directly or through others.

        ``order`` leaves out the steps on or behind a cycle: their ancestry means nothing, and the cycle is reported.
        """
        indirect = []
        for step_id, reads in self.reads.items():
            direct = set(known[step_id])
            for field_name, refs in reads:
                for ref in sorted(refs - direct):
                    if ref not in self.position:
                        self.add(self.at(step_id), field_name, f'reads steps.{ref}, but there is no step "{ref}".')
                    elif ref == step_id:
                        self.add(self.at(step_id), field_name, f"reads steps.{ref}, its own output, which it cannot.")
                    else:
                        indirect.append((step_id, field_name, ref))
        if not indirect:
            return
        # Ancestors as bit sets (bit n: the step at position n), built in dependency order:
        # one pass over the edges instead of a search per read.
        ancestors: dict[str, int] = {}
        for step_id in order:
            found = 0
            for dependency in known[step_id]:
                found |= ancestors[dependency] | (1 << self.position[dependency])
            ancestors[step_id] = found
        for step_id, field_name, ref in indirect:
            if step_id in ancestors and not ancestors[step_id] >> self.position[ref] & 1:
                self.add(
                    self.at(step_id),
                    field_name,
                    f'reads steps.{ref}, but does not depend on "{ref}" (directly or through other steps), so its '
                    f'output may not exist yet; add "{ref}" to depends_on.',
                )


def _cycle_text(cycle: list[str], shown: int = 20) -> str:
    """``a -> b -> c -> a``; a long cycle keeps its ends and says how many steps it has."""
    if len(cycle) <= shown:
        return " -> ".join([*cycle, cycle[0]])
    half = shown // 2
    return " -> ".join([*cycle[:half], f"... ({len(cycle) - shown} more)", *cycle[-half:], cycle[0]])
