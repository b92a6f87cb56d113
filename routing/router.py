"""The Task Router (the seed's ``TaskRouter``): which agent should handle a task.

The strategy is chosen per call, else per router (``set_strategy``), else per
task (``Task.routing_strategy``), else by ``SYMPHONY_ROUTING_STRATEGY``. Load,
history and a task's latest execution come from the executions layer through
the ``loads``, ``history`` and ``latest_run`` callables the router is built with
(``routing`` does not import ``executions``); ``executions.agent_activity``
builds a router wired to them.

Two ways to ask. ``decide``/``route`` are what the project's own services use:
when nothing fits they refuse, with the reason. ``route_task`` is the seed's
API and behaves as the seed framework's router does: it answers ``None`` only
when no agent is enabled, and otherwise falls back to an agent
(``strategies.fall_back``), saying so in the decision.
"""

from collections.abc import Callable, Iterable

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone

from routing.corrections import corrections_for
from routing.decisions import (
    NO_INPUT,
    AgentLoad,
    Candidate,
    LatestRun,
    NoSuitableAgent,
    RouteRequest,
    RoutingDecision,
    RoutingStrategy,
)
from routing.input_schemas import input_problems
from routing.models import AgentConfig
from routing.strategies import ROTATING_FALLBACKS, STRATEGIES, content_model, fall_back, load_custom

LoadSource = Callable[[list[int]], dict[int, AgentLoad]]
HistorySource = Callable[[list[int]], dict[int, list[str]]]
LatestRunSource = Callable[[int], LatestRun | None]


def _no_loads(agent_ids: list[int]) -> dict[int, AgentLoad]:
    return {}


def _no_history(agent_ids: list[int]) -> dict[int, list[str]]:
    return {}


def _no_latest_run(task_id: int) -> LatestRun | None:
    return None


def clean_strategy(value: str) -> str:
    if value not in RoutingStrategy.values:
        known = ", ".join(RoutingStrategy.values)
        raise ValueError(f"Unknown routing strategy {value!r}; use one of {known}.")
    return value


def strategy_for(*, strategy: str | None = None, task=None) -> str:
    return clean_strategy(strategy or getattr(task, "routing_strategy", "") or settings.SYMPHONY_ROUTING_STRATEGY)


def _fitting(configs: list[AgentConfig], request: RouteRequest) -> tuple[list[AgentConfig], list[tuple]]:
    """The agents whose input schema takes the request's input, and the others with their first problem.

    An agent that would refuse the input at submit is not a candidate: routing a task there
    could only end in a refusal, while another agent may take it.
    """
    if request.input is NO_INPUT:
        return configs, []
    fitting, refused = [], []
    for config in configs:
        problems = input_problems(config.input_schema, request.input)
        if problems:
            refused.append((config, problems[0]))
        else:
            fitting.append(config)
    return fitting, refused


def _refused_reason(refused: list[tuple]) -> str:
    named = ", ".join(f"{config.name} ({problem})" for config, problem in refused[:3])
    more = f" and {len(refused) - 3} more" if len(refused) > 3 else ""
    return f"passed over because their input schema refuses the input: {named}{more}"


class TaskRouter:
    def __init__(
        self,
        strategy: str | None = None,
        *,
        custom: Callable | None = None,
        loads: LoadSource = _no_loads,
        history: HistorySource = _no_history,
        latest_run: LatestRunSource = _no_latest_run,
    ):
        self.strategy = strategy
        self.custom = custom
        self.loads = loads
        self.history = history
        self.latest_run = latest_run
        # The decision behind this router's latest ``route_task`` answer, which is only an id.
        self.last_decision: RoutingDecision | None = None

    def set_strategy(self, strategy: str | None) -> None:
        """Route with ``strategy`` from now on (``None``: the task's own, else the site default)."""
        self.strategy = None if strategy is None else clean_strategy(strategy)

    def set_custom_router(self, custom: Callable | str) -> None:
        """Route with ``custom`` (a callable, or its dotted path) from now on; see ``strategies.route_custom``."""
        custom = load_custom(custom) if isinstance(custom, str) else custom
        if not callable(custom):
            raise TypeError(f"A custom router is a callable f(request, candidates), not {type(custom).__name__}.")
        self.custom = custom
        self.strategy = RoutingStrategy.CUSTOM

    def decide(
        self,
        task,
        *,
        strategy: str | None = None,
        agents: Iterable[AgentConfig] | None = None,
        dry_run: bool = False,
        fallback: bool = False,
    ) -> RoutingDecision:
        """Route ``task`` (a Task, or a ``RouteRequest``) and return the whole decision.

        Unless ``dry_run``, the choice is recorded for round robin: the chosen
        agent moves to the back of the rotation, in the caller's transaction.
        With ``fallback`` a task nothing fits still gets an agent while any is
        enabled (``strategies.fall_back``).
        """
        request = task if isinstance(task, RouteRequest) else RouteRequest.for_task(task)
        name = strategy_for(strategy=strategy or self.strategy, task=None if isinstance(task, RouteRequest) else task)
        if name == RoutingStrategy.CONTENT_MATCH:
            self.prepare()
        with transaction.atomic():
            pool = AgentConfig.objects.filter(enabled=True).order_by("pk")
            if agents is not None:
                pool = pool.filter(pk__in=[agent.pk for agent in agents])
            rotates = name == RoutingStrategy.ROUND_ROBIN or (fallback and name in ROTATING_FALLBACKS)
            if rotates and not dry_run:
                # Round robin reads and moves the rotation: lock it so two routers never pick the same turn.
                pool = pool.select_for_update()
            configs, refused = _fitting(list(pool), request)
            ids = [config.pk for config in configs]
            loads = self.loads(ids) if ids else {}
            candidates = [Candidate(config, loads.get(config.pk, AgentLoad())) for config in configs]
            options = {"custom": self._custom()} if name == RoutingStrategy.CUSTOM else {}
            if name == RoutingStrategy.CONTENT_MATCH and ids:
                options["history"] = self.history(ids)
                options["corrections"] = corrections_for(ids)
            decision = STRATEGIES[name](request, candidates, **options)
            if fallback:
                decision = fall_back(decision)
            if refused:
                decision.reason += "; " + _refused_reason(refused)
            if decision.chosen is not None and not dry_run:
                AgentConfig.objects.filter(pk=decision.chosen.pk).update(last_routed_at=timezone.now())
        return decision

    def prepare(self) -> None:
        """Embed and store what content match will compare with, before any transaction is open.

        Agent texts new since the last decision (a new profile, fresh history) are embedded
        once and written to the shared table; done inside the routing transaction, that
        write would hold SQLite's lock for the embedding's time or, on a read transaction,
        fail with "database is locked". Inside a caller's transaction it does nothing: the
        decision embeds what it needs itself (``routing.vectors`` never fails it for a write).
        """
        if transaction.get_connection().in_atomic_block:
            return
        try:
            self.content_model()
        except DatabaseError:  # only a head start: the decision itself reads (and reports) the database
            return

    def content_model(self):
        """Content match's relevance model over the enabled agents, as ``decide`` builds it, and its fallback note."""
        agents = list(AgentConfig.objects.filter(enabled=True).order_by("pk"))
        ids = [agent.pk for agent in agents]
        return content_model(agents, self.history(ids) if ids else {}, corrections_for(ids))

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

    async def route_task(self, task, *, strategy: str | None = None) -> int | None:
        """The seed's ``await router.route_task(task)``: an agent config's id, ``None`` only when none is enabled.

        When no agent fits, it falls back to one and ``last_decision`` says so (``fallback``).
        """
        decision = await sync_to_async(self.decide)(task, strategy=strategy, fallback=True)
        self.last_decision = decision
        return decision.agent_config_id

    def current_load(self, agent_config_id: int) -> AgentLoad:
        """How busy the agent is now, across all workers, with its capacity."""
        capacity = AgentConfig.objects.filter(pk=agent_config_id).values_list("max_concurrency", flat=True).first()
        if capacity is None:
            raise AgentConfig.DoesNotExist(f"No agent config with id {agent_config_id}.")
        return self.loads([agent_config_id]).get(agent_config_id, AgentLoad(capacity=capacity or None))

    async def agent_load(self, agent_config_id: int) -> AgentLoad:
        """The seed's agent load tracking: ``await router.agent_load(agent_config_id)``."""
        return await sync_to_async(self.current_load)(agent_config_id)

    def completed_load(self, task, agent_config_id: int | None = None) -> AgentLoad:
        """The load of the agent that ran ``task`` (a Task or its id), once its latest execution has ended.

        The load is counted from the execution table, so there is nothing to
        record here: a finished execution already stopped counting. This checks
        that it has finished (and ran on ``agent_config_id``, if given) and
        returns the agent's load as it is now; it refuses when the task has no
        execution or its latest one is still under way.
        """
        task_id = getattr(task, "pk", task)
        latest = self.latest_run(task_id)
        if latest is None:
            raise ValueError(f"Task {task_id} has no execution to complete.")
        if not latest.finished:
            raise ValueError(
                f"Task {task_id}'s latest execution {latest.execution_id} is {latest.state}, not finished: "
                "it counts in its agent's load until it ends."
            )
        if agent_config_id is not None and agent_config_id != latest.agent_id:
            raise ValueError(
                f"Task {task_id}'s latest execution {latest.execution_id} ran on agent config {latest.agent_id}, "
                f"not {agent_config_id}."
            )
        return self.current_load(latest.agent_id)

    async def mark_task_complete(self, task, agent_config_id: int | None = None) -> AgentLoad:
        """The seed's ``await router.mark_task_complete(task)``; see ``completed_load``."""
        return await sync_to_async(self.completed_load)(task, agent_config_id)
