"""The http kind, run by the real runner against a fake agent service on loopback."""

import time

import pytest

from executions.models import EventKind
from executions.models import ExecutionState as S
from executions.services import execution_submit
from tests.routing.conftest import TEST_KEY, stored_text

pytestmark = pytest.mark.django_db


def submit(agent, input_data, **options):
    return execution_submit(agent=agent, input_data=input_data, **options)


def test_it_posts_the_task_as_json_and_completes_with_the_answer(http_agent, fake_service, run):
    execution = run(submit(http_agent(), {"question": "meaning of life"}, metadata={"team": "search"}))

    assert execution.state == S.COMPLETED
    assert execution.result == {"answer": 42}
    (request,) = fake_service.requests
    assert (request.method, request.path) == ("POST", "/agents/answer")
    assert request.headers["content-type"] == "application/json"
    assert request.body == {
        "task": {"question": "meaning of life"},
        "execution_id": execution.pk,
        "attempt": 1,
        "metadata": {"team": "search"},
    }
    assert execution.steps == ["Calling the service", "Done"]
    log = [line for event in execution.events.filter(kind=EventKind.LOG) for line in event.data["lines"]]
    assert any(line.startswith(f"POST {fake_service.endpoint} -> 200 in ") for line in log)


def test_configured_headers_and_the_secret_env_key_are_sent(http_agent, fake_service, run, monkeypatch):
    monkeypatch.setenv("ANSWERER_KEY", TEST_KEY)
    agent = http_agent(settings={"headers": {"X-Team": "search"}}, secret_env="ANSWERER_KEY")
    execution = run(submit(agent, {"question": "?"}))

    assert execution.state == S.COMPLETED
    headers = fake_service.requests[0].headers
    assert headers["x-team"] == "search"
    assert headers["authorization"] == f"Bearer {TEST_KEY}"
    assert TEST_KEY not in stored_text()


def test_without_secret_env_no_authorization_is_sent(http_agent, fake_service, run):
    run(submit(http_agent(), {}))
    assert "authorization" not in fake_service.requests[0].headers


def test_a_missing_secret_env_variable_fails_while_preparing_naming_it(http_agent, fake_service, run, monkeypatch):
    monkeypatch.delenv("ANSWERER_KEY", raising=False)
    execution = run(submit(http_agent(secret_env="ANSWERER_KEY"), {}, max_attempts=3))

    assert (execution.state, execution.attempt) == (S.FAILED, 1)
    assert execution.error["type"] == "routing.factory.AgentBuildError"
    assert "environment variable ANSWERER_KEY" in execution.error["message"]
    assert fake_service.requests == []


def test_a_client_error_fails_at_once_with_the_status_and_a_body_excerpt(http_agent, fake_service, run):
    fake_service.replies = [(422, {"detail": "question is required"})]
    execution = run(submit(http_agent(), {}, max_attempts=3))

    assert (execution.state, execution.attempt) == (S.FAILED, 1)
    assert execution.error["retryable"] is False
    assert execution.error["message"] == (
        f'Request rejected by {fake_service.endpoint} (422): {{"detail": "question is required"}}; not retryable'
    )


def test_a_long_error_body_is_cut_to_an_excerpt(http_agent, fake_service, run):
    fake_service.replies = [(400, "<html>" + "oops " * 1000 + "</html>")]
    execution = run(submit(http_agent(), {}, max_attempts=1))

    assert execution.state == S.FAILED
    assert "(400): <html>oops oops" in execution.error["message"]
    assert len(execution.error["message"]) < 500


def test_a_server_error_is_retried_and_the_retry_completes(http_agent, fake_service, run):
    fake_service.replies = [(503, {"error": "warming up"})]
    execution = run(submit(http_agent(), {}, max_attempts=2))

    assert (execution.state, execution.attempt) == (S.QUEUED, 2)
    execution = run(execution)
    assert execution.state == S.COMPLETED and execution.result == {"answer": 42}


@pytest.mark.parametrize(("status", "opening"), [(429, "Rate limited by"), (500, "Server error from")])
def test_busy_or_broken_services_fail_retryable_on_the_last_attempt(http_agent, fake_service, run, status, opening):
    fake_service.replies = [(status, {"error": "try later"})]
    execution = run(submit(http_agent(), {}, max_attempts=1))

    assert execution.state == S.FAILED
    assert execution.error["retryable"] is True
    assert execution.error["message"] == (
        f'{opening} {fake_service.endpoint} ({status}): {{"error": "try later"}}; retryable'
    )


def test_a_rejected_key_is_not_retried(http_agent, fake_service, run, monkeypatch):
    monkeypatch.setenv("ANSWERER_KEY", TEST_KEY)
    fake_service.replies = [(401, {"error": f"bad key {TEST_KEY}"})]
    execution = run(submit(http_agent(secret_env="ANSWERER_KEY"), {}, max_attempts=3))

    assert (execution.state, execution.attempt) == (S.FAILED, 1)
    assert execution.error["message"].startswith(f"Authentication failed at {fake_service.endpoint} (401): ")
    assert "bad key [redacted]" in execution.error["message"]
    assert TEST_KEY not in stored_text()


def test_a_2xx_answer_that_is_not_json_fails_without_retry(http_agent, fake_service, run):
    fake_service.replies = [(200, "<html>Welcome to nginx!</html>")]
    execution = run(submit(http_agent(), {}, max_attempts=3))

    assert (execution.state, execution.attempt) == (S.FAILED, 1)
    assert execution.error["message"] == (
        f"Malformed JSON from {fake_service.endpoint} (status 200): <html>Welcome to nginx!</html>; not retryable"
    )


def test_usage_reported_by_the_service_is_recorded(http_agent, fake_service, run):
    fake_service.default_reply = {"answer": "ok", "usage": {"prompt_tokens": 10, "completion_tokens": 3, "note": "x"}}
    execution = run(submit(http_agent(), {}))

    assert execution.state == S.COMPLETED
    assert execution.usage == {"prompt_tokens": 10, "completion_tokens": 3}


def test_a_slow_service_times_out_with_a_clear_retryable_error(http_agent, fake_service, run):
    fake_service.replies = ["slow"]
    started = time.monotonic()
    execution = run(submit(http_agent(settings={"timeout": 0.3}), {}, max_attempts=1))

    assert execution.state == S.FAILED
    assert execution.error["retryable"] is True
    assert execution.error["message"] == f"Timed out after 0.3s waiting for {fake_service.endpoint}; retryable"
    assert time.monotonic() - started < 3


def test_the_execution_deadline_cancels_a_slow_request(http_agent, fake_service, run):
    fake_service.replies = ["slow"]
    started = time.monotonic()
    execution = run(submit(http_agent(settings={"timeout": 30}), {}, timeout=0.5))

    assert execution.state == S.TIMED_OUT
    assert execution.outcome.agent_left_running is False
    assert time.monotonic() - started < 3


def test_an_unreachable_service_is_a_retryable_error(http_agent, run, unused_port):
    url = f"http://127.0.0.1:{unused_port}/answer"
    execution = run(submit(http_agent(settings={"url": url}), {}, max_attempts=1))

    assert execution.state == S.FAILED
    assert execution.error["retryable"] is True
    assert execution.error["message"].startswith(f"Could not reach {url} (ConnectError: ")
