"""Conditions and templates: JMESPath over the run's context, refused with a reason when unreadable."""

import pytest

from workflows.expressions import (
    MAX_EXPRESSION_CHARS,
    ExpressionError,
    check_template,
    compile_expression,
    evaluate,
    expression_names,
    expression_step_refs,
    is_true,
    render_template,
    template_step_refs,
)

CONTEXT = {
    "input": {"text": "Hello there", "n": 3, "items": ["a", "b"], "nothing": None},
    "steps": {
        "fetch": {"output": {"words": 12, "top": [["hello", 2]]}, "state": "COMPLETED"},
        "my-id": {"output": "plain", "state": "COMPLETED"},
        "skipped": {"output": None, "state": "SKIPPED"},
    },
    "item": {"name": "x"},
    "index": 0,
}


def nested(depth: int, leaf: object = "{{ input.n }}") -> list:
    value: list = [leaf]
    for _ in range(depth - 1):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("expression", "value"),
    [
        ("input.text", "Hello there"),
        ("steps.fetch.output.words > `10`", True),
        ("steps.fetch.output.words > `20`", False),
        ('steps."my-id".output', "plain"),
        ("steps.skipped.state == 'SKIPPED'", True),
        ("length(input.items)", 2),
        ("input.missing", None),
        ("input.missing || `5`", 5),
        ("item.name", "x"),
    ],
)
def test_expressions_read_the_context(expression, value):
    assert evaluate(expression, CONTEXT) == value


@pytest.mark.parametrize(
    ("value", "truth"),
    [
        (False, False),
        (None, False),
        ("", False),
        ([], False),
        ({}, False),
        (0, True),  # the JMESPath spec: only false, null and empty strings, arrays and objects are false
        (0.0, True),
        ("false", True),
        ([0], True),
        ({"a": None}, True),
        (True, True),
    ],
)
def test_truthiness_is_jmespaths(value, truth):
    assert is_true(value) is truth


def test_truthiness_agrees_with_jmespath_itself():
    for value in (0, "", [], {}, None, False, "x", [None]):
        assert is_true(value) is evaluate("@ && `true` || `false`", value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "An expression may not be empty."),
        ("   ", "An expression may not be empty."),
        (42, "An expression must be text, not int."),
        (["steps"], "An expression must be text, not list."),
        ("x" * (MAX_EXPRESSION_CHARS + 1), f"at most {MAX_EXPRESSION_CHARS} characters"),
        ("steps.", '"steps." is not a valid expression: it ends too early (column 6).'),
        ("a b", '"a b" is not a valid expression: Unexpected token: b (column 2).'),
        ("`{bad", "Unclosed ` delimiter (column 0)"),
        ("length(", "it ends too early (column 7)"),
        ("nope(input)", "calls nope(), which is not a JMESPath function."),
        ("length(`1`, `2`)", "length() takes 1 argument(s), not 2."),
        ("not_null()", "not_null() takes at least 1 argument(s), not 0."),
        ("!" * 200 + "a", "nested"),
        ("(" * 900 + "a" + ")" * 900, "nested too deeply"),
    ],
)
def test_bad_expressions_are_refused_saying_what_and_where(text, message):
    with pytest.raises(ExpressionError) as refused:
        compile_expression(text)
    assert message in str(refused.value)


def test_a_wrong_type_at_run_time_is_an_expression_error():
    with pytest.raises(ExpressionError, match=r'"length\(`5`\)" failed: In function length\(\), invalid type'):
        evaluate("length(`5`)", CONTEXT)


def test_a_whole_value_placeholder_keeps_the_type():
    template = {"words": "{{ steps.fetch.output.words }}", "top": "{{ steps.fetch.output.top }}"}
    assert render_template(template, CONTEXT) == {"words": 12, "top": [["hello", 2]]}
    assert render_template("{{ input.nothing }}", CONTEXT) is None
    assert render_template("{{input.items}}", CONTEXT) == ["a", "b"]


def test_placeholders_inside_text_become_text():
    rendered = render_template(
        "{{ input.text }}: {{ steps.fetch.output.words }} words, top {{ steps.fetch.output.top }}, "
        "{{ steps.fetch.output.words > `10` }}, [{{ input.nothing }}]",
        CONTEXT,
    )
    assert rendered == 'Hello there: 12 words, top [["hello",2]], true, []'


def test_templates_render_nested_json_and_leave_the_rest():
    template = {"a": ["{{ index }}", {"b": "item {{ item.name }}"}], "n": 1.5, "ok": True, "none": None, "{{ k }}": 1}
    assert render_template(template, CONTEXT) == {
        "a": [0, {"b": "item x"}],
        "n": 1.5,
        "ok": True,
        "none": None,
        "{{ k }}": 1,
    }
    assert template["a"][1]["b"] == "item {{ item.name }}"


def test_a_placeholder_may_hold_braces_and_a_literal_opening_is_written_as_a_raw_string():
    assert render_template("{{ {n: input.n, nested: {t: input.text}} }}", CONTEXT) == {
        "n": 3,
        "nested": {"t": "Hello there"},
    }
    assert render_template("{{ '{{' }} not a placeholder }}", CONTEXT) == "{{ not a placeholder }}"


def test_rendering_is_bounded_by_the_json_depth_limit_not_the_stack():
    assert render_template(nested(64), CONTEXT) == nested(64, leaf=3)
    with pytest.raises(ExpressionError, match="nested at most 64 levels"):
        render_template(nested(65), CONTEXT)
    with pytest.raises(ExpressionError, match="nested at most 64 levels"):
        check_template(nested(10_000))


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ input.text", '"{{ input.text" opens "{{" at column 0 and never closes it.'),
        ("ok {{ a }} then {{ b", 'opens "{{" at column 16 and never closes it'),
        ("x {{ }} y", '"x {{ }} y" has an empty placeholder at column 2.'),
        ({"deep": ["{{ steps. }}"]}, '"steps." is not a valid expression'),
        ({"f": "{{ nope(input) }}"}, "calls nope()"),
    ],
)
def test_bad_templates_are_refused(template, message):
    with pytest.raises(ExpressionError) as refused:
        check_template(template)
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("expression", "steps"),
    [
        ("steps.fetch.output.words > `10`", {"fetch"}),
        ('steps."my-id".output', {"my-id"}),
        ("steps.a[0]", {"a"}),
        ("steps.a.output[*].x", {"a"}),
        ("[steps.a, steps.b.output]", {"a", "b"}),
        ("{x: steps.a, y: length(steps.b.output)}", {"a", "b"}),
        ("steps.a || !(steps.b)", {"a", "b"}),
        ("!steps.b", set()),  # JMESPath reads it as (!steps).b: "not" binds tighter than "."
        ("steps | c.output", {"c"}),
        ("@.steps.d", {"d"}),
        ("keys(steps)", set()),
        ("steps.*.output", set()),
        ("input.steps.a", set()),  # a field named steps inside the input is not the steps
        ("input.items[?steps.a]", set()),  # inside a filter, names are looked up on each item
        ("sort_by(input.items, &steps.a)", set()),
    ],
)
def test_expressions_name_the_steps_they_read(expression, steps):
    assert expression_step_refs(expression) == steps


def test_expressions_name_the_context_they_read():
    assert expression_names("input.a && steps.b.output || item") == {"input", "steps", "item"}
    assert expression_names("input.items[?previous]") == {"input"}


def test_templates_name_the_steps_they_read():
    template = {"a": "{{ steps.one.output }} and {{ steps.two.output.x }}", "b": ["{{ input.x }}"], "c": 5}
    assert template_step_refs(template) == {"one", "two"}
