"""What the submit services accept: every interface's input is checked here, once."""

import logging
import math
from decimal import Decimal

import pytest

from executions.models import Execution, ExecutionEvent, Task
from executions.services import SubmitError, execution_submit, task_create
from executions.validation import SubmitError as ValidationSubmitError

pytestmark = pytest.mark.django_db


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def nothing_written() -> bool:
    return not (Task.objects.exists() or Execution.objects.exists() or ExecutionEvent.objects.exists())


def test_submit_error_is_the_one_from_validation():
    assert SubmitError is ValidationSubmitError


@pytest.mark.parametrize(
    ("options", "field", "message"),
    [
        ({"timeout": math.nan}, "timeout", "timeout must be a positive number of seconds (got nan)"),
        ({"timeout": math.inf}, "timeout", "timeout must be a positive number of seconds (got inf)"),
        ({"timeout": -math.inf}, "timeout", "positive number"),
        ({"timeout": True}, "timeout", "timeout must be a number of seconds, not True"),
        ({"timeout": "10"}, "timeout", "timeout must be a number of seconds, not '10'"),
        ({"timeout": 10**400}, "timeout", "timeout must be a positive number of seconds (got 1000"),
        ({"timeout": Decimal("sNaN")}, "timeout", "positive number"),
        ({"timeout": 3600.5}, "timeout", "timeout may not exceed 3600 seconds"),
        ({"priority": 2**31}, "priority", "priority must be at least -1000000 and at most 1000000 (got 2147483648)"),
        ({"priority": -(10**20)}, "priority", "at most 1000000"),
        ({"priority": 1.5}, "priority", "priority must be a whole number, not 1.5"),
        ({"priority": False}, "priority", "priority must be a whole number, not False"),
        ({"max_attempts": 0}, "max_attempts", "max_attempts must be at least 1 and at most 100 (got 0)"),
        ({"max_attempts": 101}, "max_attempts", "at most 100"),
        ({"max_attempts": 2**63}, "max_attempts", "at most 100"),
        ({"max_attempts": math.nan}, "max_attempts", "max_attempts must be a whole number, not nan"),
        ({"input_data": {"x": math.nan}}, "input", "input must be JSON: Out of range float"),
        ({"input_data": {"bad": {1, 2}}}, "input", "input must be JSON"),
        ({"input_data": {"n": 10**5000}}, "input", "input must be JSON"),
        ({"input_data": nested(65)}, "input", "input is nested more than 64 levels deep"),
        ({"input_data": {"t": "caf\udce9"}}, "input", "input is not valid UTF-8: it holds '\\udce9'"),
        ({"input_data": {"\ud800": 1}}, "input", "input is not valid UTF-8"),
        ({"metadata": [1]}, "metadata", "metadata must be a JSON object, not list"),
        ({"metadata": {"deep": nested(64)}}, "metadata", "metadata is nested more than 64 levels deep"),
        ({"metadata": {"x": object()}}, "metadata", "metadata must be JSON"),
        ({"name": "caf\udce9"}, "name", "name is not valid UTF-8"),
        ({"name": "x" * 201}, "name", "name may be at most 200 characters (got 201)"),
        ({"name": "   "}, "name", "name may not be empty"),
        ({"name": 5}, "name", "name must be text, not int"),
        ({"tags": "sql"}, "tags", "tags must be a list of text, not str"),
        ({"tags": ["ok", 5]}, "tags", "tags must be text, not int"),
        ({"tags": ["t"] * 51}, "tags", "tags may hold at most 50 tags"),
        ({"tags": ["\udcff"]}, "tags", "tags is not valid UTF-8"),
    ],
)
def test_out_of_range_input_is_refused_naming_the_field_and_nothing_is_written(make_agent, options, field, message):
    agent = make_agent("echo")

    with pytest.raises(SubmitError) as refused:
        execution_submit(agent=agent, **options)

    assert message in str(refused.value)
    assert refused.value.field == field
    assert nothing_written()


def test_input_nested_a_hundred_thousand_levels_is_refused_without_recursion(make_agent):
    deep = nested(100_000)
    with pytest.raises(SubmitError, match="input is nested more than 64 levels deep"):
        execution_submit(agent=make_agent("echo"), input_data={"deep": deep})
    loop: list = []
    loop.append(loop)
    with pytest.raises(SubmitError, match="metadata is nested more than 64 levels deep"):
        execution_submit(agent=make_agent("echo", name="other"), metadata={"loop": loop})
    assert nothing_written()


def test_input_at_the_limits_is_accepted(make_agent, settings):
    settings.SYMPHONY_MAX_INPUT_BYTES = 1000
    agent = make_agent("echo")

    execution = execution_submit(
        agent=agent,
        input_data={"deep": nested(63), "text": "é" * 200},
        priority=1_000_000,
        max_attempts=100,
        timeout=settings.SYMPHONY_MAX_TIMEOUT,
        name="x" * 200,
        tags=["sql", "名前"],
    )

    execution.refresh_from_db()
    assert execution.task.input_data["text"] == "é" * 200
    assert (execution.priority, execution.max_attempts, execution.timeout_seconds) == (1_000_000, 100, 3600.0)
    with pytest.raises(SubmitError, match=r"input may be at most 1000 bytes as JSON \(got 1\d\d\d\)"):
        execution_submit(agent=agent, input_data={"text": "é" * 500})


def test_the_priority_bounds_are_settings(make_agent, settings):
    settings.SYMPHONY_MIN_PRIORITY, settings.SYMPHONY_MAX_PRIORITY = -5, 5
    agent = make_agent("echo")
    assert execution_submit(agent=agent, priority=-5).priority == -5
    with pytest.raises(SubmitError, match="priority must be at least -5 and at most 5"):
        execution_submit(agent=agent, priority=6)


def test_nul_in_text_is_replaced_and_noted_in_the_log(make_agent, caplog):
    with caplog.at_level(logging.WARNING, logger="executions.validation"):
        execution = execution_submit(
            agent=make_agent("echo"),
            name="a\x00b",
            input_data={"t\x00": ["x\x00y", {"z": "\x00"}]},
            metadata={"note": "\x00"},
            tags=["s\x00l"],
        )

    execution.refresh_from_db()  # what the database holds: PostgreSQL would have refused a NUL
    task = execution.task
    assert task.name == "a\ufffdb" and task.tags == ["s\ufffdl"]
    assert task.input_data == {"t\ufffd": ["x\ufffdy", {"z": "\ufffd"}]}
    assert execution.metadata == {"note": "\ufffd"}
    noted = [record.getMessage() for record in caplog.records]
    assert "Replaced 3 NUL character(s) in input with U+FFFD: PostgreSQL cannot store NUL." in noted
    assert any("in name" in line for line in noted) and any("in metadata" in line for line in noted)


def test_an_agent_default_timeout_out_of_range_is_refused(make_agent):
    agent = make_agent("echo", default_timeout=math.inf)
    with pytest.raises(SubmitError, match="the default_timeout of agent 'echo' must be a positive number"):
        execution_submit(agent=agent)
    assert nothing_written()


def test_task_create_checks_its_own_fields():
    with pytest.raises(SubmitError, match="description must be text, not NoneType"):
        task_create(name="t", description=None)
    with pytest.raises(SubmitError, match="description may be at most 10000 characters"):
        task_create(name="t", description="d" * 10_001)
    with pytest.raises(SubmitError, match="routing_strategy must be one of round_robin"):
        task_create(name="t", routing_strategy="fastest")
    with pytest.raises(SubmitError, match="priority must be at least"):
        task_create(name="t", priority=2**31)
    assert nothing_written()
    assert task_create(name="  t  ", routing_strategy="load_balanced").name == "t"
