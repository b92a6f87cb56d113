"""A workflow definition: read from JSON, YAML or a dict, checked whole before anything is stored.

``parse_spec`` collects every problem it finds, each naming the step and the
field, and raises them together as one ``SpecError``. What it returns is a
``WorkflowSpec`` the engine can trust: ids unique, dependencies known and
acyclic, expressions and templates readable, and every ``steps.<id>`` that a
step reads belongs to a step it depends on (directly or through others), so that
output exists by the time the step is evaluated.

Every check is linear in the number of steps (dicts, sets, an iterative
topological sort), since the benchmark builds 10,000-step chains and fan-outs.
"""

import heapq
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.conf import settings

# Text, not steps, is what this bounds: a 20,000-step file with inputs is a few megabytes.
DEFAULT_MAX_SOURCE_BYTES = 16_000_000
MAX_PROBLEMS_SHOWN = 50
MAX_ITERATIONS_LIMIT = 100
MAX_CONCURRENT_LIMIT = 10_000
NAME_MAX_CHARS = 100
AGENT_NAME_MAX_CHARS = 100  # AgentConfig.name's max_length
USERNAME_MAX_CHARS = 150  # Django's User.username and Group.name

WORKFLOW_KEYS = ("name", "description", "steps")
# In the order ``as_dict`` writes them.
STEP_KEYS = ("id", "agent", "route", "approval", "input", "depends_on", "condition", "map", "max_concurrent")
STEP_KEYS += ("until", "max_iterations", "retries", "timeout", "priority", "on_failure")
ROUTE_KEYS = ("strategy", "tags", "query")
APPROVAL_KEYS = ("message", "approvers", "group")
KINDS = ("agent", "route", "approval")
ON_FAILURE = ("fail", "continue")
# What an approval step has no use for: it runs no agent.
NOT_FOR_APPROVAL = ("input", "retries", "timeout", "map", "max_concurrent", "until", "max_iterations")

NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
STEP_ID = re.compile(r"[a-z][a-z0-9_-]*\Z")
USERNAME = re.compile(r"[\w.@+-]+\Z")

# The names a step's expressions can read (the engine builds this context).
CONTEXT_NAMES = frozenset({"input", "steps"})
MAP_NAMES = frozenset({"item", "index"})
LOOP_NAMES = frozenset({"iteration", "previous"})


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a definition: the step (by id, or by position when it has no usable id) and field."""

    step: str | None
    field: str | None
    message: str
    position: int | None = None

    def __str__(self) -> str:
        where = []
        if self.step is not None:
            where.append(f'step "{self.step}"')
        elif self.position is not None:
            where.append(f"step #{self.position + 1}")
        if self.field is not None:
            where.append(f'field "{self.field}"')
        return f"{', '.join(where)}: {self.message}" if where else self.message


class SpecError(ValueError):
    """A definition that cannot be stored; ``problems`` lists everything wrong, ``step``/``field`` the first."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        first = self.problems[0]
        self.step, self.field = first.step, first.field
        super().__init__(self.problems)

    def __str__(self) -> str:
        lines = [str(problem) for problem in self.problems[:MAX_PROBLEMS_SHOWN]]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            lines.append(f"... and {len(self.problems) - MAX_PROBLEMS_SHOWN} more problems.")
        return "\n".join(lines)


@dataclass(frozen=True)
class RouteSpec:
    """The router chooses the agent per run; ``strategy`` "" means the site's default."""

    strategy: str = ""
    tags: tuple[str, ...] = ()
    query: str | None = None


@dataclass(frozen=True)
class ApprovalSpec:
    """A step that runs no agent and waits for a permitted user: one of ``approvers`` or a member of ``group``."""

    message: str = ""
    approvers: tuple[str, ...] = ()
    group: str | None = None


@dataclass(frozen=True)
class StepSpec:
    id: str
    agent: str | None = None
    route: RouteSpec | None = None
    approval: ApprovalSpec | None = None
    input: Any = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    condition: str | None = None
    map: str | None = None
    max_concurrent: int | None = None
    until: str | None = None
    max_iterations: int | None = None
    retries: int = 0
    timeout: float | None = None
    priority: int = 0
    on_failure: str = "fail"

    @property
    def kind(self) -> str:
        """ "agent", "route" or "approval"."""
        return next(kind for kind in KINDS if getattr(self, kind) is not None)

    @property
    def max_attempts(self) -> int:
        return self.retries + 1

    def as_dict(self) -> dict:
        """The step as it is written, with defaults left out."""
        data: dict[str, Any] = {}
        defaults = _STEP_DEFAULTS
        for key in STEP_KEYS:
            value = getattr(self, key)
            if key != "id" and value == defaults[key]:
                continue
            if isinstance(value, RouteSpec | ApprovalSpec):
                value = _record_dict(value)
            data[key] = list(value) if isinstance(value, tuple) else value
        return data


_STEP_DEFAULTS = {key: getattr(StepSpec(id=""), key) for key in STEP_KEYS}


def _record_dict(record: RouteSpec | ApprovalSpec) -> dict:
    keys = ROUTE_KEYS if isinstance(record, RouteSpec) else APPROVAL_KEYS
    blank = type(record)()
    return {
        key: list(value) if isinstance(value, tuple) else value
        for key in keys
        if (value := getattr(record, key)) != getattr(blank, key)
    }


def topological_sort(ids: list[str], depends_on: dict[str, tuple[str, ...]]) -> tuple[list[str], set[str]]:
    """(the ids in dependency order, ready ones by position first; the ids left over on or behind a cycle)."""
    position = {step_id: index for index, step_id in enumerate(ids)}
    waiting = {step_id: len(depends_on[step_id]) for step_id in ids}
    dependents: dict[str, list[str]] = {step_id: [] for step_id in ids}
    for step_id in ids:
        for dependency in depends_on[step_id]:
            dependents[dependency].append(step_id)
    ready = [position[step_id] for step_id in ids if not waiting[step_id]]
    heapq.heapify(ready)
    order = []
    while ready:
        step_id = ids[heapq.heappop(ready)]
        order.append(step_id)
        for dependent in dependents[step_id]:
            waiting[dependent] -= 1
            if not waiting[dependent]:
                heapq.heappush(ready, position[dependent])
    return order, set(ids) - set(order)


@dataclass(frozen=True)
class WorkflowSpec:
    """A checked definition. Build it with ``parse_spec``; ``as_dict()`` is what is stored."""

    name: str
    steps: tuple[StepSpec, ...]
    description: str = ""

    @cached_property
    def _by_id(self) -> dict[str, StepSpec]:
        return {step.id: step for step in self.steps}

    @cached_property
    def _dependents(self) -> dict[str, tuple[str, ...]]:
        found: dict[str, list[str]] = {step.id: [] for step in self.steps}
        for step in self.steps:
            for dependency in step.depends_on:
                found[dependency].append(step.id)
        return {step_id: tuple(ids) for step_id, ids in found.items()}

    @cached_property
    def _order(self) -> tuple[str, ...]:
        ids = [step.id for step in self.steps]
        return tuple(topological_sort(ids, {step.id: step.depends_on for step in self.steps})[0])

    def step(self, step_id: str) -> StepSpec:
        """The step with this id; ``KeyError`` when there is none."""
        return self._by_id[step_id]

    def dependents(self, step_id: str) -> tuple[str, ...]:
        """The steps that list ``step_id`` in their ``depends_on``, in file order."""
        return self._dependents[step_id]

    def ancestors(self, step_id: str) -> frozenset[str]:
        """Every step ``step_id`` depends on, directly or through others."""
        found: set[str] = set()
        stack = list(self.step(step_id).depends_on)
        while stack:
            current = stack.pop()
            if current not in found:
                found.add(current)
                stack.extend(self._by_id[current].depends_on)
        return frozenset(found)

    def topological_order(self) -> tuple[str, ...]:
        """Every step id after the steps it depends on; among steps ready together, file order."""
        return self._order

    @cached_property
    def has_approvals(self) -> bool:
        return any(step.approval is not None for step in self.steps)

    def roots(self) -> tuple[str, ...]:
        """The steps that depend on nothing: a run starts with them."""
        return tuple(step.id for step in self.steps if not step.depends_on)

    def sinks(self) -> tuple[str, ...]:
        """The steps nothing depends on: their outputs are the run's output."""
        return tuple(step.id for step in self.steps if not self._dependents[step.id])

    def as_dict(self) -> dict:
        data: dict[str, Any] = {"name": self.name}
        if self.description:
            data["description"] = self.description
        data["steps"] = [step.as_dict() for step in self.steps]
        return data


def parse_spec(
    source: dict | str,
    *,
    agent_exists: Callable[[str], bool] | None = None,
    limits: dict | None = None,
) -> WorkflowSpec:
    """The checked definition from a dict, or from JSON or YAML text; ``SpecError`` lists every problem.

    ``agent_exists(name)`` is asked once per agent name (``None`` skips the check).
    ``limits`` may set ``max_steps`` and ``max_source_bytes``.
    """
    limits = {
        "max_steps": settings.SYMPHONY_MAX_WORKFLOW_STEPS,
        "max_source_bytes": DEFAULT_MAX_SOURCE_BYTES,
        **(limits or {}),
    }
    from workflows.spec_reader import SpecReader, load_source  # it builds this module's classes

    data = load_source(source, limits["max_source_bytes"])
    return SpecReader(agent_exists=agent_exists, max_steps=limits["max_steps"]).read(data)
