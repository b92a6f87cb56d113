"""The llm kind, run by the real runner against a fake OpenAI-compatible endpoint on loopback."""

import time

import pytest

from executions.models import EventKind, Execution
from executions.models import ExecutionState as S
from executions.services import execution_submit
from tests.routing.conftest import TEST_KEY, stored_text

pytestmark = pytest.mark.django_db

REPLY = "Symphony streams every token as it arrives."


def submit(agent, input_data, **options):
    return execution_submit(agent=agent, input_data=input_data, **options)


def output_events(execution) -> list[str]:
    return [event.data["text"] for event in execution.events.filter(kind=EventKind.OUTPUT)]


def state_path(execution) -> list[str]:
    return [event.to_state for event in execution.events.filter(kind=EventKind.STATE)]


def test_it_completes_with_the_streamed_reply(llm_agent, run):
    execution = run(submit(llm_agent(), {"query": "What does Symphony do?"}))

    assert execution.state == S.COMPLETED
    assert execution.result["content"] == REPLY
    assert execution.result["model"] == "fake-model"
    assert execution.result["finish_reason"] == "stop"
    assert execution.steps == ["Connecting to fake-model", "Streaming", "Done"]


def test_it_sends_the_rendered_instructions_as_system_prompt_and_the_query_as_user_message(llm_agent, fake_openai, run):
    agent = llm_agent(settings={"temperature": 0.2, "max_tokens": 64})
    run(submit(agent, {"query": "What does Symphony do?"}))

    (request,) = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    assert request.body["model"] == "fake-model"
    assert request.body["messages"] == [
        {"role": "system", "content": "You are writer, a technical writer. Answer briefly."},
        {"role": "user", "content": "What does Symphony do?"},
    ]
    assert request.body["stream"] is True
    assert request.body["stream_options"] == {"include_usage": True}
    assert (request.body["temperature"], request.body["max_tokens"]) == (0.2, 64)


def test_placeholders_fill_from_the_input_and_unknown_braces_stay_as_written(llm_agent, fake_openai, run):
    template = 'You are {name}. Reply in {language} as {"answer": "..."}; {unknown} stays.'
    run(submit(llm_agent(instruction_template=template), {"prompt": "Hello", "language": "French"}))

    system, user = fake_openai.requests[0].body["messages"]
    assert system["content"] == 'You are writer. Reply in French as {"answer": "..."}; {unknown} stays.'
    assert user == {"role": "user", "content": "Hello"}


def test_a_string_input_is_the_query(llm_agent, fake_openai, run):
    execution = run(submit(llm_agent(instruction_template=""), "Summarise the release notes."))

    assert execution.state == S.COMPLETED
    assert fake_openai.requests[0].body["messages"] == [{"role": "user", "content": "Summarise the release notes."}]


def test_a_conversation_in_messages_follows_the_system_prompt(llm_agent, fake_openai, run):
    conversation = [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"},
    ]
    execution = run(submit(llm_agent(), {"messages": conversation}))

    assert execution.state == S.COMPLETED
    messages = fake_openai.requests[0].body["messages"]
    assert messages[0]["role"] == "system" and messages[1:] == conversation


def test_input_without_a_query_fails_at_once_with_a_clear_message(llm_agent, fake_openai, run):
    execution = run(submit(llm_agent(), {"ask": "misnamed"}, max_attempts=3))

    assert execution.state == S.FAILED
    assert execution.error["retryable"] is False
    assert 'needs the task as text: a string, or {"query": "..."}' in execution.error["message"]
    assert "'ask'" in execution.error["message"]
    assert fake_openai.requests == []


def test_streamed_tokens_arrive_in_order_in_output_events(llm_agent, fake_openai, run):
    fake_openai.token_delay = 0.06  # longer than the test flush interval, so tokens span several events
    execution = run(submit(llm_agent(), {"query": "Stream please"}))

    texts = output_events(execution)
    assert "".join(texts) == REPLY == execution.result["content"]
    assert len(texts) > 1, "the reply reached the log in one piece, not as it streamed"


def test_token_usage_is_recorded_on_the_execution(llm_agent, run):
    execution = run(submit(llm_agent(instruction_template="Be brief."), {"query": "three word question"}))

    expected = {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12}
    assert execution.usage == expected
    assert execution.result["usage"] == expected


def test_the_key_named_by_secret_env_is_sent_as_a_bearer_token(llm_agent, fake_openai, run, monkeypatch):
    monkeypatch.setenv("WRITER_API_KEY", TEST_KEY)
    execution = run(submit(llm_agent(secret_env="WRITER_API_KEY"), {"query": "hi"}))

    assert execution.state == S.COMPLETED
    assert fake_openai.requests[0].headers["authorization"] == f"Bearer {TEST_KEY}"
    assert TEST_KEY not in stored_text()


def test_without_secret_env_the_workers_own_openai_key_is_not_sent(llm_agent, fake_openai, run, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    execution = run(submit(llm_agent(), {"query": "hi"}))

    assert execution.state == S.COMPLETED
    assert TEST_KEY not in fake_openai.requests[0].headers["authorization"]


def test_a_missing_secret_env_variable_fails_while_preparing_naming_it(llm_agent, fake_openai, run, monkeypatch):
    monkeypatch.delenv("WRITER_API_KEY", raising=False)
    execution = run(submit(llm_agent(secret_env="WRITER_API_KEY"), {"query": "hi"}, max_attempts=3))

    assert execution.state == S.FAILED
    assert state_path(execution) == [S.QUEUED, S.PREPARING, S.FAILED]
    assert execution.error["type"] == "routing.factory.AgentBuildError"
    assert "environment variable WRITER_API_KEY" in execution.error["message"]
    assert fake_openai.requests == []


def test_a_rate_limit_with_attempts_left_is_retried_after_retry_after_and_completes(llm_agent, fake_openai, run):
    fake_openai.behaviours = ["rate_limited"]
    execution = run(submit(llm_agent(), {"query": "hi"}, max_attempts=2))

    assert (execution.state, execution.attempt) == (S.QUEUED, 2)
    assert (execution.not_before - execution.queued_at).total_seconds() >= 2  # the server's Retry-After
    assert run(execution).state == S.QUEUED  # not due yet: not claimed
    Execution.objects.filter(pk=execution.pk).update(not_before=None)
    execution = run(execution)
    assert execution.state == S.COMPLETED
    assert execution.result["content"] == REPLY


def test_a_rate_limit_on_the_last_attempt_fails_with_a_clear_retryable_error(llm_agent, fake_openai, run):
    fake_openai.behaviours = ["rate_limited"]
    execution = run(submit(llm_agent(), {"query": "hi"}, max_attempts=1))

    assert execution.state == S.FAILED
    assert execution.error["retryable"] is True
    assert execution.error["type"] == "routing.kinds.errors.AgentCallError"
    message = execution.error["message"]
    assert message.startswith(f"Rate limited by {fake_openai.base_url} (429), retry after 2s: ")
    assert "Rate limit reached for requests" in message and message.endswith("; retryable")
    assert len(fake_openai.requests) == 1, "the client retried on its own"


def test_a_server_error_is_retried_then_fails_clearly_on_the_last_attempt(llm_agent, fake_openai, run):
    fake_openai.behaviours = ["server_error", "server_error"]
    execution = run(submit(llm_agent(), {"query": "hi"}, max_attempts=2))
    assert (execution.state, execution.attempt) == (S.QUEUED, 2)

    execution = run(execution)

    assert execution.state == S.FAILED
    assert execution.error["retryable"] is True
    assert execution.error["message"].startswith(f"Server error from {fake_openai.base_url} (500): ")
    assert "The server had an error" in execution.error["message"]


def test_a_rejected_key_is_not_retried_and_never_stored(llm_agent, fake_openai, run, monkeypatch):
    monkeypatch.setenv("WRITER_API_KEY", TEST_KEY)
    fake_openai.behaviours = ["unauthorized"]  # the fake echoes the Authorization header in its error
    execution = run(submit(llm_agent(secret_env="WRITER_API_KEY"), {"query": "hi"}, max_attempts=3))

    assert (execution.state, execution.attempt) == (S.FAILED, 1)
    assert execution.error["retryable"] is False
    assert execution.error["message"].startswith(f"Authentication failed at {fake_openai.base_url} (401): ")
    assert "Incorrect API key provided: Bearer [redacted]" in execution.error["message"]
    assert TEST_KEY not in stored_text()


def test_a_wrong_model_path_is_not_retried(llm_agent, fake_openai, run):
    agent = llm_agent(settings={"base_url": fake_openai.url})  # forgot the /v1
    execution = run(submit(agent, {"query": "hi"}, max_attempts=3))

    assert (execution.state, execution.attempt) == (S.FAILED, 1)
    assert execution.error["message"].startswith(f"Not found at {fake_openai.url} (404): ")


def test_a_silent_endpoint_times_out_with_a_clear_retryable_error(llm_agent, fake_openai, run):
    fake_openai.behaviours = ["slow"]
    started = time.monotonic()
    execution = run(submit(llm_agent(settings={"request_timeout": 0.3}), {"query": "hi"}, max_attempts=1))

    assert execution.state == S.FAILED
    assert execution.error["retryable"] is True
    assert execution.error["message"] == f"Timed out after 0.3s waiting for {fake_openai.base_url}; retryable"
    assert time.monotonic() - started < 3


def test_a_stream_that_stalls_part_way_times_out_after_the_tokens_it_sent(llm_agent, fake_openai, run):
    fake_openai.behaviours = ["stall"]  # the first token, then silence for slow_seconds (5 s)
    # 2 s, not less: the timeout also covers the reply's headers, which a busy machine can delay past 0.3 s.
    execution = run(submit(llm_agent(settings={"request_timeout": 2}), {"query": "hi"}, max_attempts=1))

    assert execution.state == S.FAILED
    assert "Timed out after 2s" in execution.error["message"]
    assert "".join(output_events(execution)) == "Symphony"


def test_the_execution_deadline_cancels_a_slow_request(llm_agent, fake_openai, run):
    fake_openai.behaviours = ["slow"]
    started = time.monotonic()
    execution = run(submit(llm_agent(settings={"request_timeout": 30}), {"query": "hi"}, timeout=0.5))

    assert execution.state == S.TIMED_OUT
    assert execution.outcome.agent_left_running is False
    assert time.monotonic() - started < 3


def test_an_unreachable_endpoint_is_a_retryable_connection_error(llm_agent, run, unused_port):
    base_url = f"http://127.0.0.1:{unused_port}/v1"
    execution = run(submit(llm_agent(settings={"base_url": base_url}), {"query": "hi"}, max_attempts=1))

    assert execution.state == S.FAILED
    assert execution.error["retryable"] is True
    assert execution.error["message"].startswith(f"Could not connect to {base_url} (")


def test_a_malformed_stream_fails_clearly_without_retry(llm_agent, fake_openai, run):
    fake_openai.behaviours = ["malformed"]
    execution = run(submit(llm_agent(), {"query": "hi"}, max_attempts=3))

    assert (execution.state, execution.attempt) == (S.FAILED, 1)
    assert execution.error["message"] == (
        f"Malformed stream from {fake_openai.base_url}: this is not JSON at all; not retryable"
    )


def test_a_stream_without_content_fails_clearly(llm_agent, fake_openai, run):
    fake_openai.behaviours = ["empty"]
    execution = run(submit(llm_agent(), {"query": "hi"}, max_attempts=3))

    assert (execution.state, execution.attempt) == (S.FAILED, 1)
    assert execution.error["message"].startswith(
        f"{fake_openai.base_url} returned no content for model fake-model (finish_reason stop"
    )


def test_a_stream_cut_off_before_the_model_finished_is_retryable(llm_agent, fake_openai, run):
    fake_openai.behaviours = ["truncated"]
    execution = run(submit(llm_agent(), {"query": "hi"}, max_attempts=1))

    assert execution.state == S.FAILED
    assert execution.error["retryable"] is True
    assert "ended before the model finished" in execution.error["message"]
