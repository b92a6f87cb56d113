"""What a routing decision is made of: the task as the router sees it, the
candidate agents with their load, and the decision with its explanation.

Kept apart from the strategies so the router, the CLI, the admin and the pages
share one shape, and ``RoutingDecision.as_dict()`` is what is stored with an
execution.
"""

from dataclasses import dataclass, field
from typing import Any

from django.db import models

from routing.models import AgentConfig


class RoutingStrategy(models.TextChoices):
    ROUND_ROBIN = "round_robin", "Round robin"
    CAPABILITY_MATCH = "capability_match", "Capability match"
    CONTENT_MATCH = "content_match", "Content match"
    LOAD_BALANCED = "load_balanced", "Load balanced"
    CUSTOM = "custom", "Custom"


# The one definition of "the task's query", shared by the router and the llm agent.
QUERY_KEYS = ("query", "prompt", "question", "text", "input")


def task_query(input_data: Any) -> str | None:
    """The task's question: the input itself if it is text, else its first query-like field that says something.

    A number is read as its text ("42"); blank text is no query. ``None`` when the input has none.
    """
    if isinstance(input_data, str):
        return input_data.strip() or None
    if isinstance(input_data, dict):
        for key in QUERY_KEYS:
            value = input_data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
    return None


def query_text(input_data: Any) -> str:
    """The task's query as the router reads it: empty when the input has none."""
    return task_query(input_data) or ""


class _NoInput:
    def __repr__(self) -> str:
        return "NO_INPUT"


# A request made of a query alone (``symphony route --query``): no agent's input schema is checked.
NO_INPUT: Any = _NoInput()


@dataclass(frozen=True)
class RouteRequest:
    """A task as the router sees it."""

    query: str = ""
    tags: tuple[str, ...] = ()
    name: str = ""
    description: str = ""
    # The task's input: an agent whose input schema refuses it is not a candidate.
    input: Any = field(default=NO_INPUT, compare=False)

    @classmethod
    def for_task(cls, task) -> "RouteRequest":
        """From a Task (or anything with ``input_data``, ``tags``, ``name``, ``description``)."""
        return cls(
            query=query_text(getattr(task, "input_data", None)),
            tags=tuple(str(tag) for tag in (getattr(task, "tags", None) or ())),
            name=getattr(task, "name", "") or "",
            description=getattr(task, "description", "") or "",
            input=getattr(task, "input_data", None),
        )

    @property
    def text(self) -> str:
        """Everything the task says about itself, for content analysis."""
        return " ".join(part for part in (self.name, self.description, self.query) if part)


@dataclass(frozen=True)
class AgentLoad:
    running: int = 0
    queued: int = 0
    # Most executions it runs at once across all workers (its ``max_concurrency``); None: no limit.
    capacity: int | None = None

    def utilisation(self, capacity: int) -> float:
        """Work on the agent relative to what it can run at once."""
        return (self.running + self.queued) / max(capacity, 1)


@dataclass
class Candidate:
    agent: AgentConfig
    load: AgentLoad
    score: float = 0.0
    note: str = ""

    @property
    def saturated(self) -> bool:
        return bool(self.agent.max_concurrency) and self.load.running >= self.agent.max_concurrency

    def as_dict(self) -> dict:
        return {
            "agent": self.agent.name,
            "agent_id": self.agent.pk,
            "score": round(self.score, 4),
            "running": self.load.running,
            "queued": self.load.queued,
            "capacity": self.agent.max_concurrency or None,
            "saturated": self.saturated,
            "note": self.note,
        }


@dataclass
class RoutingDecision:
    strategy: str
    chosen: AgentConfig | None
    reason: str
    candidates: list[Candidate] = field(default_factory=list)
    # The strategy found no agent that fits and the seed API's router chose one anyway (``strategies.fall_back``).
    fallback: bool = False

    @property
    def agent_config_id(self) -> int | None:
        return self.chosen.pk if self.chosen else None

    def as_dict(self) -> dict:
        return {
            "strategy": self.strategy,
            "chosen": self.chosen.name if self.chosen else None,
            "chosen_id": self.agent_config_id,
            "reason": self.reason,
            "candidates": [candidate.as_dict() for candidate in self.candidates],
            # Only when true: decisions stored before fallbacks existed read the same as ordinary ones.
            **({"fallback": True} if self.fallback else {}),
        }


@dataclass(frozen=True)
class LatestRun:
    """A task's latest execution as the router sees it: who ran it and whether it has ended."""

    execution_id: int
    agent_id: int
    state: str
    finished: bool


class NoSuitableAgent(Exception):
    """The router found no agent for the task; ``decision`` says why and what it considered."""

    def __init__(self, decision: RoutingDecision):
        super().__init__(decision.reason)
        self.decision = decision
