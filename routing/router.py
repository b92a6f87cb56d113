"""The Task Router (the seed's ``TaskRouter``): which agent should handle a task.

The strategy is chosen per call, else per task (``Task.routing_strategy``),
else by ``SYMPHONY_ROUTING_STRATEGY``. Load and history come from the
executions layer through the ``loads`` and ``history`` callables the router is
built with (``routing`` does not import ``executions``); ``executions.routing``
builds a router wired to them.
"""

from collections.abc import Callable, Iterable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from routing.decisions import (
    AgentLoad,
    Candidate,
    NoSuitableAgent,
    RouteRequest,
    RoutingDecision,
    RoutingStrategy,
)
from routing.models import AgentConfig
from routing.strategies import STRATEGIES, load_custom

LoadSource = Callable[[list[int]], dict[int, AgentLoad]]
HistorySource = Callable[[list[int]], dict[int, list[str]]]


def _no_loads(agent_ids: list[int]) -> dict[int, AgentLoad]:
    return {}


def _no_history(agent_ids: list[int]) -> dict[int, list[str]]:
    return {}


def strategy_for(*, strategy: str | None = None, task=None) -> str:
    value = strategy or getattr(task, "routing_strategy", "") or settings.SYMPHONY_ROUTING_STRATEGY
    if value not in RoutingStrategy.values:
        known = ", ".join(RoutingStrategy.values)
        raise ValueError(f"Unknown routing strategy {value!r}; use one of {known}.")
    return value


class TaskRouter:
    def __init__(
        self,
        strategy: str | None = None,
        *,
        custom: Callable | None = None,
        loads: LoadSource = _no_loads,
        history: HistorySource = _no_history,
    ):
        self.strategy = strategy
        self.custom = custom
        self.loads = loads
        self.history = history

    def decide(
        self,
        task,
        *,
        strategy: str | None = None,
        agents: Iterable[AgentConfig] | None = None,
        dry_run: bool = False,
    ) -> RoutingDecision:
        """Route ``task`` (a Task, or a ``RouteRequest``) and return the whole decision.

        Unless ``dry_run``, the choice is recorded for round robin: the chosen
        agent moves to the back of the rotation, in the caller's transaction.
        """
        request = task if isinstance(task, RouteRequest) else RouteRequest.for_task(task)
        name = strategy_for(strategy=strategy or self.strategy, task=None if isinstance(task, RouteRequest) else task)
        with transaction.atomic():
            pool = AgentConfig.objects.filter(enabled=True).order_by("pk")
            if agents is not None:
                pool = pool.filter(pk__in=[agent.pk for agent in agents])
            if name == RoutingStrategy.ROUND_ROBIN and not dry_run:
                # Round robin reads and moves the rotation: lock it so two routers never pick the same turn.
                pool = pool.select_for_update()
            configs = list(pool)
            ids = [config.pk for config in configs]
            loads = self.loads(ids) if ids else {}
            candidates = [Candidate(config, loads.get(config.pk, AgentLoad())) for config in configs]
            options = {"custom": self._custom()} if name == RoutingStrategy.CUSTOM else {}
            if name == RoutingStrategy.CONTENT_MATCH and ids:
                options["history"] = self.history(ids)
            decision = STRATEGIES[name](request, candidates, **options)
            if decision.chosen is not None and not dry_run:
                AgentConfig.objects.filter(pk=decision.chosen.pk).update(last_routed_at=timezone.now())
        return decision

    def _custom(self) -> Callable | None:
        if self.custom is not None:
            return self.custom
        path = settings.SYMPHONY_CUSTOM_ROUTER
        return load_custom(path) if path else None

    def route(self, task, *, strategy: str | None = None) -> int:
        """The chosen agent config's id; ``NoSuitableAgent`` (with the decision) when none fits."""
        decision = self.decide(task, strategy=strategy)
        if decision.chosen is None:
            raise NoSuitableAgent(decision)
        return decision.chosen.pk

    async def route_task(self, task, *, strategy: str | None = None) -> int:
        """The seed's ``await router.route_task(task)``."""
        return await sync_to_async(self.route)(task, strategy=strategy)
