"""Workflow definitions: every problem refused before anything is stored, naming the step and the field."""

import json
import math
from pathlib import Path

import pytest
import yaml

from workflows.spec import SpecError, StepSpec, WorkflowSpec, parse_spec

DEMO = Path(__file__).resolve().parents[2] / "workflows" / "definitions" / "demo.yaml"
DEMO_AGENTS = {"text-stats", "slow", "flaky"}

LOOP_INPUT = {"n": "{{ iteration }}", "p": "{{ previous }}"}
DIGEST_YAML = """
name: digest
description: Count, then publish.
steps:
  - id: fetch
    agent: text-stats
    input: {text: "{{ input.text }}", n: 3}
    retries: 2
    timeout: 60
  - id: route
    route: {strategy: capability_match, tags: [text], query: "{{ steps.fetch.output.top_words }}"}
    depends_on: [fetch]
    condition: "steps.fetch.output.words > `10`"
  - id: publish
    approval: {message: "Publish?", approvers: [alice], group: operators}
    depends_on: [route]
    on_failure: continue
"""


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def agent(step_id: str, **fields) -> dict:
    return {"id": step_id, "agent": "slow", **fields}


def definition(*steps: dict, **fields) -> dict:
    return {"name": "wf", "steps": list(steps), **fields}


def problems(source, **options) -> list[tuple]:
    with pytest.raises(SpecError) as refused:
        parse_spec(source, **options)
    return [(problem.step, problem.field, problem.message) for problem in refused.value.problems]


def refused_with(source, step, field, message, **options) -> None:
    found = problems(source, **options)
    assert any(p[0] == step and p[1] == field and message in p[2] for p in found), found


# Patterns that parse -------------------------------------------------------------


@pytest.mark.parametrize(
    "steps",
    [
        pytest.param([agent("a"), agent("b", depends_on=["a"]), agent("c", depends_on=["b"])], id="sequence"),
        pytest.param(
            [
                agent("start"),
                *(agent(f"branch{n}", depends_on=["start"], input={"x": "{{ steps.start.output }}"}) for n in range(3)),
                agent("join", depends_on=["branch0", "branch1", "branch2"], input="{{ steps.branch1.output }}"),
            ],
            id="fan-out-fan-in",
        ),
        pytest.param(
            [
                agent("check"),
                agent("big", depends_on=["check"], condition="steps.check.output.size > `10`"),
                agent("small", depends_on=["check"], condition="!(steps.check.output.size > `10`)"),
            ],
            id="branch",
        ),
        pytest.param(
            [agent("each", map="input.items", max_concurrent=5, input={"item": "{{ item }}", "at": "{{ index }}"})],
            id="map",
        ),
        pytest.param(
            [agent("loop", until="output.done", max_iterations=5, input=LOOP_INPUT)],
            id="loop",
        ),
        pytest.param(
            [agent("draft"), {"id": "ok", "approval": {"message": "Ship it?"}, "depends_on": ["draft"]}],
            id="approval",
        ),
        pytest.param(
            [agent("a"), agent("b", depends_on=["a"]), agent("c", depends_on=["b"], condition="steps.a.output")],
            id="reads-an-ancestor-through-another-step",
        ),
    ],
)
def test_the_patterns_parse(steps):
    spec = parse_spec(definition(*steps))
    assert [step.id for step in spec.steps] == [step["id"] for step in steps]


def test_a_parsed_step_has_its_fields_and_defaults():
    spec = parse_spec(DIGEST_YAML)
    fetch, route, publish = spec.steps
    fetch_input = {"text": "{{ input.text }}", "n": 3}
    assert fetch == StepSpec(id="fetch", agent="text-stats", input=fetch_input, retries=2, timeout=60.0)
    assert (fetch.kind, fetch.max_attempts, fetch.priority, fetch.on_failure) == ("agent", 3, 0, "fail")
    assert route.kind == "route" and route.route.strategy == "capability_match" and route.route.tags == ("text",)
    assert publish.approval.approvers == ("alice",) and publish.approval.group == "operators"
    assert publish.on_failure == "continue" and publish.input == {}
    assert spec.description == "Count, then publish."


def test_yaml_and_json_of_the_same_definition_parse_equal():
    data = yaml.safe_load(DIGEST_YAML)
    assert parse_spec(DIGEST_YAML) == parse_spec(json.dumps(data)) == parse_spec(data)


def test_as_dict_round_trips_and_leaves_defaults_out():
    spec = parse_spec(DIGEST_YAML)
    stored = json.loads(json.dumps(spec.as_dict()))
    assert parse_spec(stored) == spec
    assert stored["steps"][2] == {
        "id": "publish",
        "approval": {"message": "Publish?", "approvers": ["alice"], "group": "operators"},
        "depends_on": ["route"],
        "on_failure": "continue",
    }


def test_the_graph_reads_in_dependency_order_then_file_order():
    spec = parse_spec(
        definition(
            agent("late", depends_on=["b", "a"]),
            agent("b", depends_on=["a"]),
            agent("a"),
            agent("free"),
        )
    )
    assert spec.topological_order() == ("a", "b", "late", "free")
    assert spec.dependents("a") == ("late", "b")
    assert spec.ancestors("late") == {"a", "b"}
    assert spec.ancestors("a") == frozenset()
    assert spec.step("free").id == "free"
    with pytest.raises(KeyError):
        spec.step("nope")


def test_the_demo_definition_parses_with_the_demo_agents():
    spec = parse_spec(DEMO.read_text(), agent_exists=DEMO_AGENTS.__contains__)
    approval = next(step for step in spec.steps if step.kind == "approval")
    assert any(step.condition for step in spec.steps)
    assert len(approval.depends_on) > 1  # fan-in
    assert sum(1 for step in spec.steps if not step.depends_on) > 1  # fan-out
    assert {step.agent for step in spec.steps if step.agent} == DEMO_AGENTS


def test_an_agent_is_asked_about_once_however_many_steps_use_it():
    asked = []
    parse_spec(definition(*(agent(f"s{n}") for n in range(100))), agent_exists=lambda name: asked.append(name) or True)
    assert asked == ["slow"]


# Size: linear, never recursive ----------------------------------------------------


def test_a_10000_step_chain_parses_without_recursion():
    steps = [agent("s0")] + [
        agent(f"s{n}", depends_on=[f"s{n - 1}"], input={"previous": f"{{{{ steps.s{n - 1}.output }}}}"})
        for n in range(1, 10_000)
    ]
    steps[-1]["condition"] = "steps.s0.output"  # an ancestor 9,999 steps up
    spec = parse_spec(definition(*steps))
    assert spec.topological_order()[-1] == "s9999"
    assert len(spec.ancestors("s9999")) == 9_999


def test_a_10000_step_fan_out_and_fan_in_parses():
    middle = [agent(f"s{n}", depends_on=["root"]) for n in range(10_000)]
    spec = parse_spec(definition(agent("root"), *middle, agent("join", depends_on=[s["id"] for s in middle])))
    assert len(spec.dependents("root")) == 10_000
    assert spec.topological_order()[-1] == "join"


def test_a_10000_step_cycle_is_named_briefly():
    steps = [agent(f"s{n}", depends_on=[f"s{(n + 1) % 10_000}"]) for n in range(10_000)]
    [(step, field, message)] = problems(definition(*steps))
    assert (step, field) == ("s0", "depends_on")
    assert message.startswith("cycle: s0 -> s1 -> ") and "(9980 more)" in message and message.count("->") == 21


# Refusals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "field", "message"),
    [
        ({"steps": [agent("a")]}, "name", "name is missing."),
        (definition(agent("a"), name="bad name!"), "name", "may hold only letters, digits"),
        (definition(agent("a"), name="x" * 101), "name", "at most 100 characters"),
        (definition(agent("a"), name=5), "name", "name must be text, not int"),
        (definition(agent("a"), description=["x"]), "description", "description must be text"),
        (definition(agent("a"), stpes=[]), "stpes", 'unknown field; did you mean "steps"?'),
        ({"name": "wf"}, "steps", "steps is missing"),
        ({"name": "wf", "steps": {"a": {}}}, "steps", "steps must be a list of steps, not dict"),
        ({"name": "wf", "steps": []}, "steps", "a workflow needs at least one step"),
    ],
)
def test_bad_workflow_fields_are_refused_by_name(source, field, message):
    refused_with(source, None, field, message)


def test_too_many_steps_are_refused():
    source = definition(*(agent(f"s{n}") for n in range(4)))
    refused_with(source, None, "steps", "at most 3 steps (got 4)", limits={"max_steps": 3})


@pytest.mark.parametrize(
    ("step", "field", "message"),
    [
        ({"agent": "slow"}, "id", "id is missing."),
        (agent("Fetch"), "id", "id must be a lowercase letter then a-z, 0-9, - or _ (got 'Fetch')"),
        (agent("1st"), "id", "id must be a lowercase letter"),
        (agent(7), "id", "id must be text, not int"),
        ("just text", None, "a step must be a mapping, not str"),
    ],
)
def test_steps_without_a_usable_id_are_named_by_position(step, field, message):
    found = problems(definition(agent("first"), step))
    assert any(p == (None, field, p[2]) and message in p[2] for p in found), found
    with pytest.raises(SpecError, match=r"step #2"):
        parse_spec(definition(agent("first"), step))


def test_a_duplicate_id_is_refused():
    refused_with(definition(agent("a"), agent("a")), "a", "id", "another step has this id (step #1)")


APPROVAL = {"message": "OK?"}
NOT_FOR_APPROVAL = "an approval step runs no agent, so it takes no"
CONTEXT_HAS = "which is not in its context (it has: input, steps)"


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"dependson": ["x"]}, "dependson", 'unknown field; did you mean "depends_on"?'),
        ({"agent": None}, "agent", 'a step needs one of "agent", "route" or "approval"'),
        ({"route": {"strategy": "round_robin"}}, "route", "exactly one of agent, route and approval"),
        ({"agent": ["slow"]}, "agent", "agent must be text, not list"),
        ({"agent": "nobody"}, "agent", 'unknown agent "nobody"'),
        ({"agent": None, "route": "capability_match"}, "route", "route must be a mapping"),
        ({"agent": None, "route": {"strategy": "best"}}, "route.strategy", "route.strategy must be one of round_robin"),
        ({"agent": None, "route": {"tags": "text"}}, "route.tags", "route.tags must be a list of text, not str"),
        ({"agent": None, "route": {"query": 5}}, "route.query", "route.query must be text, not int"),
        ({"agent": None, "route": {"query": "caf\udce9"}}, "route.query", "route.query is not valid UTF-8"),
        ({"agent": None, "route": {"query": "{{ input."}}, "route.query", "never closes it"),
        ({"agent": None, "route": {"strategy": "round_robin", "tag": []}}, "route.tag", 'did you mean "tags"?'),
        ({"agent": None, "approval": "yes"}, "approval", "approval must be a mapping"),
        ({"agent": None, "approval": {"approvers": "alice"}}, "approval.approvers", "must be a list of usernames"),
        ({"agent": None, "approval": {"approvers": ["al ice"]}}, "approval.approvers", "'al ice' is not a username"),
        ({"agent": None, "approval": {"group": ["ops"]}}, "approval.group", "approval.group must be text"),
        ({"agent": None, "approval": {"mesage": "x"}}, "approval.mesage", 'did you mean "message"?'),
        ({"agent": None, "approval": APPROVAL, "input": {"x": 1}}, "input", f'{NOT_FOR_APPROVAL} "input"'),
        ({"agent": None, "approval": APPROVAL, "retries": 1}, "retries", 'takes no "retries"'),
        ({"agent": None, "approval": APPROVAL, "map": "input.items"}, "map", 'takes no "map"'),
        ({"agent": None, "approval": APPROVAL, "until": "output", "max_iterations": 2}, "until", 'takes no "until"'),
        ({"depends_on": "a"}, "depends_on", "depends_on must be a list of step ids, not str (write [a])"),
        ({"depends_on": ["zz"]}, "depends_on", 'unknown step "zz"'),
        ({"depends_on": ["b"]}, "depends_on", "a step cannot depend on itself"),
        ({"depends_on": ["a", "a"]}, "depends_on", '"a" is listed twice'),
        ({"depends_on": [1]}, "depends_on", "1 is not a step id"),
        ({"condition": "steps."}, "condition", '"steps." is not a valid expression: it ends too early (column 6)'),
        ({"condition": ""}, "condition", "condition may not be empty"),
        ({"condition": True}, "condition", "condition must be text, not bool"),
        ({"condition": "nope(input)"}, "condition", "calls nope(), which is not a JMESPath function"),
        ({"condition": "stpes.a.output"}, "condition", f'reads "stpes", {CONTEXT_HAS}'),
        ({"condition": "item.x"}, "condition", 'reads "item"'),
        ({"map": "input.items[", "max_concurrent": 2}, "map", "is not a valid expression"),
        ({"map": "item"}, "map", 'reads "item"'),
        ({"until": "output ==", "max_iterations": 3}, "until", "is not a valid expression"),
        ({"input": {"t": "{{ input.text"}}, "input", "never closes it"),
        ({"input": {"t": "{{ steps.zz.output }}"}}, "input", 'reads steps.zz, but there is no step "zz"'),
        ({"input": {"t": "{{ steps.b.output }}"}}, "input", "reads steps.b, its own output"),
        ({"input": {"t": "{{ steps.c.output }}"}}, "input", 'does not depend on "c"'),
        ({"condition": "steps.c.state == 'COMPLETED'"}, "condition", 'does not depend on "c"'),
        ({"map": "steps.c.output", "max_concurrent": 1}, "map", 'does not depend on "c"'),
        ({"agent": None, "route": {"query": "{{ steps.c.output }}"}}, "route.query", 'does not depend on "c"'),
        ({"until": "steps.c.output", "max_iterations": 2}, "until", 'does not depend on "c"'),
        ({"input": {"x": "{{ output }}"}}, "input", 'reads "output"'),
        ({"input": {"x": math.nan}}, "input", "input must be JSON: Out of range float"),
        ({"input": {"x": "caf\udce9"}}, "input", "input is not valid UTF-8"),
        ({"input": nested(65)}, "input", "input is nested more than 64 levels deep"),
        ({"retries": -1}, "retries", "retries must be at least 0 and at most 99 (got -1)"),
        ({"retries": 100}, "retries", "at most 99"),
        ({"retries": "2"}, "retries", "retries must be a whole number, not '2'"),
        ({"retries": True}, "retries", "retries must be a whole number, not True"),
        ({"timeout": 0}, "timeout", "timeout must be a positive number of seconds (got 0)"),
        ({"timeout": math.inf}, "timeout", "positive number of seconds"),
        ({"timeout": 3601}, "timeout", "timeout may not exceed 3600 seconds"),
        ({"timeout": "60"}, "timeout", "timeout must be a number of seconds, not '60'"),
        ({"priority": 1.5}, "priority", "priority must be a whole number"),
        ({"priority": 10**7}, "priority", "priority must be at least -1000000 and at most 1000000"),
        ({"max_concurrent": 2}, "max_concurrent", 'only a mapped step (a step with "map") takes "max_concurrent"'),
        ({"map": "input.items", "max_concurrent": 0}, "max_concurrent", "max_concurrent must be at least 1"),
        ({"until": "output.done"}, "max_iterations", '"until" needs "max_iterations" (1 to 100)'),
        ({"max_iterations": 3}, "max_iterations", 'only a loop (a step with "until") takes "max_iterations"'),
        ({"until": "output.done", "max_iterations": 101}, "max_iterations", "at most 100"),
        ({"until": "output.done", "max_iterations": 0}, "max_iterations", "at least 1"),
        ({"map": "input.items", "until": "output", "max_iterations": 2}, "until", '"map" and "until" exclude'),
        ({"on_failure": "ignore"}, "on_failure", "on_failure must be fail or continue (got 'ignore')"),
    ],
)
def test_bad_step_fields_are_refused_naming_the_step_and_the_field(fields, field, message):
    step = {key: value for key, value in {**agent("b", depends_on=["a"]), **fields}.items() if value is not None}
    steps = [agent("a"), step, agent("c", depends_on=["a"])]
    refused_with(definition(*steps), "b", field, message, agent_exists={"slow"}.__contains__)


@pytest.mark.parametrize(
    ("dependencies", "cycle"),
    [
        ({"a": ["b"], "b": ["a"]}, "cycle: a -> b -> a (each depends on the next)."),
        ({"a": ["c"], "b": ["a"], "c": ["b"]}, "cycle: a -> c -> b -> a (each depends on the next)."),
    ],
)
def test_a_cycle_is_refused_naming_its_steps(dependencies, cycle):
    steps = [agent(step_id, depends_on=needs) for step_id, needs in dependencies.items()]
    assert problems(definition(agent("start"), *steps)) == [("a", "depends_on", cycle)]


def test_each_cycle_is_named_once_and_steps_behind_it_are_not_blamed():
    steps = [
        agent("a", depends_on=["b"]),
        agent("b", depends_on=["a"]),
        agent("after", depends_on=["a"]),
        agent("x", depends_on=["y"]),
        agent("y", depends_on=["x"]),
    ]
    assert [message for _, _, message in problems(definition(*steps))] == [
        "cycle: a -> b -> a (each depends on the next).",
        "cycle: x -> y -> x (each depends on the next).",
    ]


def test_every_problem_is_reported_at_once_in_file_order():
    source = definition(
        agent("a", retries=-1),
        agent("b", depends_on=["zz"]),
        agent("c", condition="steps."),
        name="bad name",
    )
    with pytest.raises(SpecError) as refused:
        parse_spec(source)
    error = refused.value
    assert [(p.step, p.field) for p in error.problems] == [
        (None, "name"),
        ("a", "retries"),
        ("b", "depends_on"),
        ("c", "condition"),
    ]
    assert (error.step, error.field) == (None, "name")
    lines = str(error).splitlines()
    assert lines[2] == 'step "b", field "depends_on": unknown step "zz".'


def test_a_long_list_of_problems_is_shortened_in_the_message():
    source = definition(*(agent(f"s{n}", retries=-1) for n in range(60)))
    with pytest.raises(SpecError) as refused:
        parse_spec(source)
    assert len(refused.value.problems) == 60
    assert str(refused.value).splitlines()[-1] == "... and 10 more problems."


# Text sources ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name: wf\nsteps:\n  - id: a\n   agent: slow\n", "not valid JSON or YAML at line 4, column 4"),
        ("[1, 2]", "a definition is a mapping with a name and steps, not list"),
        ("just words", "a definition is a mapping with a name and steps, not str"),
        ("name: wf\nsteps:\n  - &s {id: a, agent: slow}\n  - *s\n", "repeated through a YAML alias"),
        ("name: wf\nsteps:\n  - {id: a, agent: slow, input: {1: x}}\n", "YAML reads 1 as int"),
        ("[" * 100_000, "the definition is nested too deeply."),
    ],
)
def test_bad_text_is_refused_with_where(text, message):
    with pytest.raises(SpecError) as refused:
        parse_spec(text)
    assert message in str(refused.value)


def test_a_yaml_alias_bomb_is_refused_without_being_expanded():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]
    lines += ["name: wf", "steps: [{id: s, agent: slow, input: *a9}]"]
    with pytest.raises(SpecError, match="YAML alias"):
        parse_spec("\n".join(lines))


def test_text_over_the_size_limit_is_refused():
    with pytest.raises(SpecError, match="at most 100 bytes"):
        parse_spec(json.dumps(definition(*(agent(f"s{n}") for n in range(10)))), limits={"max_source_bytes": 100})


def test_a_spec_is_a_value():
    spec = parse_spec(DIGEST_YAML)
    assert isinstance(spec, WorkflowSpec) and spec == parse_spec(DIGEST_YAML)
    with pytest.raises(AttributeError):
        spec.name = "other"
