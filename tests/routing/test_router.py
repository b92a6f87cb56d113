import json

import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command

from executions.agent_activity import task_router
from executions.models import ExecutionState as S
from executions.services import SubmitError, execution_submit, task_create
from executions.state import transition
from routing.decisions import AgentLoad, NoSuitableAgent, RouteRequest, RoutingStrategy
from routing.models import AgentConfig

pytestmark = pytest.mark.django_db


def agent(name, *, expertise=(), role="", description="", examples=(), **fields) -> AgentConfig:
    return AgentConfig.objects.create(
        name=name,
        role=role,
        description=description,
        capabilities=[{"name": name, "expertise": list(expertise)}],
        example_tasks=list(examples),
        settings={"path": "tests.agents.echo"},
        **fields,
    )


def make_team() -> dict[str, AgentConfig]:
    """An SQL analyst, a translator and a code reviewer, each described in plain words (other test modules use it)."""
    return {
        "sql": agent(
            "sql-analyst",
            expertise=["sql", "databases", "query optimisation"],
            role="Database analyst",
            description="Writes and tunes SQL queries against relational databases.",
            examples=["Why is this Postgres query slow?"],
        ),
        "translator": agent(
            "translator",
            expertise=["translation", "french", "german"],
            role="Translator",
            description="Translates documents between English, French and German.",
            examples=["Translate this letter into French."],
        ),
        "reviewer": agent(
            "code-reviewer",
            expertise=["python", "code review", "security"],
            role="Code reviewer",
            description="Reviews pull requests for bugs, style and security problems.",
            examples=["Review this Python function for bugs."],
        ),
    }


@pytest.fixture
def team(db):
    return make_team()


def running(agent_config, count=1):
    for _ in range(count):
        execution = execution_submit(agent=agent_config)
        transition(execution.pk, S.PREPARING, expected=[S.QUEUED])
        transition(execution.pk, S.RUNNING, expected=[S.PREPARING])


def route(query="", tags=(), strategy=None, **options):
    return task_router(**options).decide(RouteRequest(query=query, tags=tuple(tags)), strategy=strategy)


def test_round_robin_takes_every_agent_in_turn(team):
    chosen = [route(strategy=RoutingStrategy.ROUND_ROBIN).chosen.name for _ in range(6)]
    assert chosen == ["sql-analyst", "translator", "code-reviewer"] * 2


def test_round_robin_rotation_survives_a_new_router_and_a_dry_run(team):
    route(strategy=RoutingStrategy.ROUND_ROBIN)
    assert task_router().decide(RouteRequest(), strategy="round_robin", dry_run=True).chosen.name == "translator"
    assert route(strategy=RoutingStrategy.ROUND_ROBIN).chosen.name == "translator"


def test_capability_match_scores_the_share_of_tags_covered(team):
    decision = route(tags=["SQL", "databases"], strategy=RoutingStrategy.CAPABILITY_MATCH)

    assert decision.chosen == team["sql"]
    scores = {c.agent.name: c.score for c in decision.candidates}
    assert scores["sql-analyst"] == 1.0 and scores["translator"] == 0.0
    assert "sql" in decision.reason and "databases" in decision.reason


def test_capability_ties_go_to_the_less_loaded_agent(db):
    busy = agent("busy", expertise=["summaries"])
    idle = agent("idle", expertise=["summaries"])
    running(busy)

    decision = route(tags=["summaries"], strategy=RoutingStrategy.CAPABILITY_MATCH)

    assert decision.chosen == idle
    assert [c.agent for c in decision.candidates] == [idle, busy]


def test_capability_match_without_a_match_says_so(team):
    decision = route(tags=["astronomy"], strategy=RoutingStrategy.CAPABILITY_MATCH)
    assert decision.chosen is None
    assert decision.reason == "no agent has a capability matching the task's tags"


def test_content_match_reads_the_query_and_says_when_nothing_fits(team):
    decision = route("Could you put this contract into German for our Berlin office?", strategy="content_match")
    assert decision.chosen == team["translator"]
    assert "most relevant" in decision.reason

    nothing = route("What will the weather be like in Lisbon tomorrow?", strategy="content_match")
    assert nothing.chosen is None and nothing.reason.startswith("nothing here fits")


def test_load_balanced_picks_the_least_busy_relative_to_capacity(db):
    small = agent("small", max_concurrency=2)
    large = agent("large", max_concurrency=10)
    assert route(strategy=RoutingStrategy.LOAD_BALANCED).chosen == small  # both idle: lowest id

    running(small)
    running(large, 3)  # 3 of 10 busy is less busy than 1 of 2
    decision = route(strategy=RoutingStrategy.LOAD_BALANCED)

    assert decision.chosen == large
    assert decision.reason == "large is the least busy (3 running, 0 queued, capacity 10)"
    assert {c.agent.name: c.score for c in decision.candidates} == {"large": 0.7, "small": 0.5}


def pick_the_reviewer(request, candidates):
    return "code-reviewer", "security questions always go to review"


def test_a_custom_router_from_settings_or_passed_in(team, settings):
    settings.SYMPHONY_CUSTOM_ROUTER = "tests.routing.test_router.pick_the_reviewer"
    decision = route(strategy=RoutingStrategy.CUSTOM)
    assert (decision.chosen, decision.reason) == (team["reviewer"], "security questions always go to review")

    passed = route(strategy=RoutingStrategy.CUSTOM, custom=lambda request, candidates: team["sql"].pk)
    assert passed.chosen == team["sql"]

    refused = route(strategy=RoutingStrategy.CUSTOM, custom=lambda request, candidates: "nobody")
    assert refused.chosen is None and "'nobody', which is not an enabled agent" in refused.reason


def test_disabled_agents_are_never_candidates(team):
    team["translator"].enabled = False
    team["translator"].save()
    decision = route("Translate this letter into French.", strategy="content_match")
    assert team["translator"] not in [c.agent for c in decision.candidates]
    assert decision.chosen != team["translator"]


def test_saturated_agents_are_skipped_unless_nothing_else_fits(db):
    full = agent("full", expertise=["maps"], max_concurrency=1)
    spare = agent("spare", expertise=["maps"], max_concurrency=1)
    running(full)
    assert route(tags=["maps"], strategy="capability_match").chosen == spare

    running(spare)
    decision = route(tags=["maps"], strategy="capability_match")
    assert decision.chosen is not None
    assert "every agent that fits is at capacity, so it waits for a slot" in decision.reason


def test_strategy_per_call_overrides_per_task_which_overrides_the_default(team, settings):
    settings.SYMPHONY_ROUTING_STRATEGY = "capability_match"
    task = task_create(name="t", input_data={"query": "translate to French"}, tags=["sql"])
    assert task_router().decide(task).strategy == "capability_match"

    task.routing_strategy = "content_match"
    assert task_router().decide(task).strategy == "content_match"
    assert task_router().decide(task, strategy="load_balanced").strategy == "load_balanced"


def test_an_unknown_strategy_is_a_clear_error(team):
    with pytest.raises(ValueError, match="Unknown routing strategy 'fastest'; use one of round_robin"):
        route(strategy="fastest")
    with pytest.raises(SubmitError, match="Unknown routing strategy"):
        execution_submit(input_data={"query": "x"}, strategy="fastest")


def test_submitting_without_an_agent_routes_and_stores_the_decision(team):
    execution = execution_submit(
        input_data={"query": "This SQL query on our orders table takes a minute; can you speed it up?"},
        strategy="content_match",
    )

    assert execution.agent == team["sql"]
    assert execution.routing["strategy"] == "content_match"
    assert execution.routing["chosen"] == "sql-analyst"
    assert {c["agent"] for c in execution.routing["candidates"]} == {"sql-analyst", "translator", "code-reviewer"}
    assert json.loads(json.dumps(execution.routing)) == execution.routing
    assert execution.events.get().data == {"reason": "submitted", "routed_to": "sql-analyst"}


def test_a_task_nothing_fits_is_refused_and_nothing_is_written(team):
    with pytest.raises(SubmitError, match="No suitable agent: nothing here fits"):
        execution_submit(input_data={"query": "How do I fix a leaky faucet?"}, name="tap", strategy="content_match")
    assert not team["sql"].tasks.exists()
    from executions.models import Task

    assert not Task.objects.filter(name="tap").exists()


def test_route_task_is_awaitable_as_in_the_seed(team):
    task = task_create(name="t", input_data={"query": "Review this Python function for security bugs"})
    router = task_router(RoutingStrategy.CONTENT_MATCH)
    assert async_to_sync(router.route_task)(task) == team["reviewer"].pk
    assert router.last_decision.fallback is False


def test_the_projects_own_routing_still_refuses_a_task_nothing_fits(team):
    task = task_create(name="t", input_data={"query": "Knit a scarf"})

    with pytest.raises(NoSuitableAgent) as refused:
        task_router(RoutingStrategy.CONTENT_MATCH).route(task)
    assert refused.value.decision.chosen is None
    assert "fallback" not in refused.value.decision.as_dict()


def test_route_dry_run_prints_the_candidates_and_runs_nothing(team, capsys):
    call_command("symphony", "route", "--query", "translate this into German", "--strategy", "content_match")

    out = capsys.readouterr().out
    assert "strategy: content_match" in out
    assert "* " in out and "translator" in out and "sql-analyst" in out
    assert "chosen: translator:" in out
    assert not team["translator"].executions.exists()
    team["translator"].refresh_from_db()
    assert team["translator"].last_routed_at is None


def broken_router(request, candidates):
    raise KeyError("region")


def test_a_failing_or_missing_custom_router_is_a_clear_refusal(team, settings):
    settings.SYMPHONY_CUSTOM_ROUTER = "tests.routing.test_router.broken_router"
    with pytest.raises(SubmitError, match="the custom router broken_router failed: KeyError: 'region'"):
        execution_submit(input_data={"query": "x"}, strategy="custom")

    settings.SYMPHONY_CUSTOM_ROUTER = "tests.routing.nowhere.router"
    with pytest.raises(SubmitError, match="The custom router 'tests.routing.nowhere.router' cannot be loaded"):
        execution_submit(input_data={"query": "x"}, strategy="custom")


# The seed's router API: fallbacks, strategy switching and load tracking -------------------------


def seed_route(router, task):
    return async_to_sync(router.route_task)(task)


def test_route_task_falls_back_to_round_robin_when_no_content_fits(team):
    task = task_create(name="t", input_data={"query": "Knit a scarf"})
    router = task_router(RoutingStrategy.CONTENT_MATCH)

    chosen = [seed_route(router, task) for _ in range(3)]

    assert chosen == [team["sql"].pk, team["translator"].pk, team["reviewer"].pk]
    decision = router.last_decision
    assert decision.fallback and decision.as_dict()["fallback"] is True
    assert decision.reason.startswith("nothing here fits: the query is unlike every agent's role")
    assert decision.reason.endswith("each under its threshold; fell back to round robin: code-reviewer")


def test_route_task_takes_the_best_scoring_least_busy_agent_when_no_capability_matches(db):
    busy = agent("busy", expertise=["maps"])
    idle = agent("idle", expertise=["weather"])
    running(busy)
    task = task_create(name="t", input_data={"query": "x"}, tags=["astronomy"])
    router = task_router(RoutingStrategy.CAPABILITY_MATCH)

    assert seed_route(router, task) == idle.pk
    assert router.last_decision.fallback
    assert router.last_decision.reason.endswith("; fell back to the best-scoring, least busy agent: idle")


def test_route_task_answers_none_only_when_no_agent_is_enabled(db):
    task = task_create(name="t", input_data={"query": "anything"})
    router = task_router(RoutingStrategy.ROUND_ROBIN)
    assert seed_route(router, task) is None

    agent("off", enabled=False)
    assert seed_route(router, task) is None
    assert router.last_decision.chosen is None and not router.last_decision.fallback


def test_set_strategy_switches_and_refuses_an_unknown_one(team):
    task = task_create(name="t", input_data={"query": "translate to French"}, routing_strategy="content_match")
    router = task_router(RoutingStrategy.CAPABILITY_MATCH)

    router.set_strategy(RoutingStrategy.LOAD_BALANCED)
    assert router.decide(task).strategy == "load_balanced"
    with pytest.raises(ValueError, match="Unknown routing strategy 'fastest'; use one of round_robin, capability"):
        router.set_strategy("fastest")
    assert router.strategy == "load_balanced"

    router.set_strategy(None)
    assert router.decide(task).strategy == "content_match"


def test_set_custom_router_takes_a_callable_or_a_dotted_path_and_switches_to_custom(team):
    task = task_create(name="t", input_data={"query": "x"})
    router = task_router(RoutingStrategy.ROUND_ROBIN)

    router.set_custom_router(lambda request, candidates: "translator")
    assert router.strategy == RoutingStrategy.CUSTOM
    assert seed_route(router, task) == team["translator"].pk

    router.set_custom_router("tests.routing.test_router.pick_the_reviewer")
    assert seed_route(router, task) == team["reviewer"].pk
    assert router.last_decision.reason == "security questions always go to review"

    with pytest.raises(TypeError, match="not int"):
        router.set_custom_router(42)
    with pytest.raises(ValueError, match="cannot be loaded"):
        router.set_custom_router("tests.routing.nowhere.router")


def test_a_failing_custom_router_falls_back_to_round_robin_on_the_seed_api(team):
    router = task_router()
    router.set_custom_router(broken_router)
    task = task_create(name="t", input_data={"query": "x"})

    assert seed_route(router, task) == team["sql"].pk
    assert router.last_decision.reason == (
        "the custom router broken_router failed: KeyError: 'region'; fell back to round robin: sql-analyst"
    )
    with pytest.raises(NoSuitableAgent):
        router.route(task)


def test_agent_load_counts_running_and_queued_executions_with_the_capacity(db):
    small = agent("small", max_concurrency=2)
    free = agent("free")
    running(small)
    execution_submit(agent=small)
    router = task_router()

    assert async_to_sync(router.agent_load)(small.pk) == AgentLoad(running=1, queued=1, capacity=2)
    assert async_to_sync(router.agent_load)(free.pk) == AgentLoad(running=0, queued=0, capacity=None)
    with pytest.raises(AgentConfig.DoesNotExist, match="No agent config with id 999999"):
        async_to_sync(router.agent_load)(999999)


def test_mark_task_complete_reads_the_finished_execution_and_refuses_one_still_under_way(db):
    worker = agent("worker", max_concurrency=3)
    task = task_create(name="t", input_data={"query": "x"})
    router = task_router()
    mark = async_to_sync(router.mark_task_complete)

    with pytest.raises(ValueError, match=f"Task {task.pk} has no execution to complete"):
        mark(task)
    execution = execution_submit(task=task, agent=worker)
    transition(execution.pk, S.PREPARING, expected=[S.QUEUED])
    transition(execution.pk, S.RUNNING, expected=[S.PREPARING])
    with pytest.raises(ValueError, match=f"execution {execution.pk} is RUNNING, not finished"):
        mark(task.pk)
    assert async_to_sync(router.agent_load)(worker.pk).running == 1

    transition(execution.pk, S.COMPLETED, expected=[S.RUNNING])

    assert mark(task) == AgentLoad(running=0, queued=0, capacity=3)
    assert mark(task.pk, worker.pk) == AgentLoad(running=0, queued=0, capacity=3)
    with pytest.raises(ValueError, match=f"ran on agent config {worker.pk}, not 999999"):
        mark(task, 999999)
