"""Which failures are retried: only the transient ones, and a final failure says why."""

import pytest

from executions.errors import exception_detail, is_transient
from executions.models import ExecutionState as S
from executions.services import execution_submit


class Marked(Exception):
    retryable = True


class MarkedNot(TimeoutError):
    retryable = False


@pytest.mark.parametrize(
    ("exc", "transient"),
    [
        (TimeoutError("slow"), True),
        (ConnectionRefusedError("refused"), True),
        (Marked("busy"), True),
        (MarkedNot("said no"), False),  # the mark wins over the class
        (ValueError("bad input"), False),
        (KeyError("missing"), False),
        (TypeError("wrong"), False),
        (AttributeError("no such"), False),
        (RuntimeError("broke"), False),
    ],
)
def test_only_timeouts_connection_errors_and_marked_errors_are_transient(exc, transient):
    assert is_transient(exc) is transient


def test_httpx_network_errors_are_transient():
    import httpx

    assert is_transient(httpx.ConnectError("refused"))
    assert is_transient(httpx.ReadTimeout("slow"))
    assert not is_transient(httpx.InvalidURL("nope"))


def test_the_detail_is_storable_and_names_the_type():
    detail = exception_detail(ValueError("bad \x00 byte"), "trace", attempt=2, agent="a")
    assert detail["type"] == "ValueError" and detail["message"] == "bad \ufffd byte"
    assert (detail["attempt"], detail["agent"], detail["retryable"]) == (2, "a", False)


@pytest.mark.django_db
@pytest.mark.parametrize("agent", ["boom", "bad_input", "not_retryable"])
def test_a_programming_or_input_error_fails_at_once_saying_why(make_agent, run, agent):
    execution = run(execution_submit(agent=make_agent(agent), max_attempts=5))

    assert execution.state == S.FAILED and execution.attempt == 1
    assert execution.error["retry"].startswith("not retried because")
    assert "is not transient" in execution.error["retry"]
    failed = execution.events.get(to_state=S.FAILED)
    assert "not retried because" in failed.data["reason"]


@pytest.mark.django_db
@pytest.mark.parametrize("agent", ["drops_connection", "marked_retryable"])
def test_a_transient_error_is_retried_until_attempts_run_out(make_agent, run, agent):
    execution = execution_submit(agent=make_agent(agent), max_attempts=3)
    states = [run(execution).state for _ in range(3)]

    execution.refresh_from_db()
    assert states == [S.QUEUED, S.QUEUED, S.FAILED] and execution.attempt == 3
    assert execution.error["retry"] == "not retried because no attempts are left (3 of 3 used)"
    assert execution.events.filter(to_state=S.QUEUED, from_state=S.RUNNING).count() == 2


@pytest.mark.django_db
def test_an_agent_that_cannot_be_built_fails_at_once(db, run):
    from routing.models import AgentConfig

    config = AgentConfig.objects.create(name="ghost", settings={"path": "tests.agents.does_not_exist"})
    execution = run(execution_submit(agent=config, max_attempts=4))

    assert execution.state == S.FAILED and execution.attempt == 1
    assert "not retried because" in execution.error["retry"]
