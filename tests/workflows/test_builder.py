"""The Python builder writes the same definition as a file, and is refused the same way."""

import pytest
import yaml

from workflows.builder import Workflow
from workflows.spec import SpecError, parse_spec

DIGEST_YAML = """
name: digest
description: Count, then publish.
steps:
  - id: fetch
    agent: text-stats
    input: {text: "{{ input.text }}"}
    retries: 2
  - id: each-word
    agent: slow
    depends_on: [fetch]
    map: steps.fetch.output.top_words
    max_concurrent: 3
    input: {word: "{{ item[0] }}"}
  - id: publish
    approval: {message: "Publish?"}
    depends_on: [fetch, each-word]
"""


def digest() -> Workflow:
    wf = Workflow("digest", description="Count, then publish.")
    fetch = wf.step("fetch", agent="text-stats", input={"text": "{{ input.text }}"}, retries=2)
    words = wf.step(
        "each-word",
        agent="slow",
        depends_on=[fetch],
        map="steps.fetch.output.top_words",
        max_concurrent=3,
        input={"word": "{{ item[0] }}"},
    )
    wf.step("publish", approval={"message": "Publish?"}, depends_on=[fetch, "each-word"])
    assert words.id == "each-word"
    return wf


def test_the_builder_writes_what_a_file_says():
    assert digest().to_dict() == yaml.safe_load(DIGEST_YAML)


def test_the_builder_gives_the_same_spec_as_the_file():
    assert digest().spec(agent_exists={"text-stats", "slow"}.__contains__) == parse_spec(DIGEST_YAML)


def test_depends_on_takes_one_step_or_id_as_well_as_a_list():
    wf = Workflow("pair")
    first = wf.step("first", agent="slow")
    wf.step("second", agent="slow", depends_on=first)
    wf.step("third", agent="slow", depends_on="second")
    assert wf.spec().topological_order() == ("first", "second", "third")
    assert wf.spec().step("third").depends_on == ("second",)


def test_a_step_writes_a_placeholder_for_its_output():
    wf = Workflow("refs")
    stats = wf.step("stats", agent="text-stats")
    other = wf.step("long-read", agent="slow")
    assert stats.output() == "{{ steps.stats.output }}"
    assert stats.output("words") == "{{ steps.stats.output.words }}"
    assert other.output("x") == '{{ steps."long-read".output.x }}'
    wf.step("sum", agent="slow", depends_on=[stats, other], input={"n": stats.output("words"), "o": other.output()})
    assert wf.spec().step("sum").input == {"n": "{{ steps.stats.output.words }}", "o": '{{ steps."long-read".output }}'}


def test_a_bad_built_definition_is_refused_naming_the_step_and_field():
    wf = Workflow("bad")
    wf.step("a", agent="ghost", depends_on=["b"])
    wf.step("b", agent="slow", depends_on=["a"], condition="steps.")
    with pytest.raises(SpecError) as refused:
        wf.spec(agent_exists={"slow"}.__contains__)
    assert [(p.step, p.field) for p in refused.value.problems] == [
        ("a", "depends_on"),
        ("a", "agent"),
        ("b", "condition"),
    ]
    assert 'step "a", field "depends_on": cycle: a -> b -> a' in str(refused.value)
