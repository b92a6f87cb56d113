"""Quiet INFO logs: a line as each execution starts and ends, none per poll or wake-up; no django-q
lines in the CLI's output; JSON lines when SYMPHONY_LOG_FORMAT=json."""

import json
import logging
import threading

import pytest

from executions import dispatcher
from executions.services import execution_submit
from symphony.log_format import JsonFormatter
from tests.symphony.test_settings import manage

INFO_FROM_US = ("executions", "workflows", "routing", "symphony", "django-q")


def lines(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith(INFO_FROM_US)]


@pytest.mark.django_db
def test_an_execution_logs_one_line_as_it_starts_and_one_as_it_ends(make_agent, run, caplog):
    agent = make_agent("echo")
    caplog.set_level(logging.INFO)
    execution = execution_submit(agent=agent, input_data={"x": 1})
    caplog.clear()

    run(execution)

    said = lines(caplog)
    assert [r.getMessage().split(":")[0] for r in said] == [
        f"Execution {execution.pk} started",
        f"Execution {execution.pk} ended COMPLETED",
    ]
    ended = said[1]
    assert (ended.execution_id, ended.agent, ended.state, ended.attempt) == (execution.pk, "echo", "COMPLETED", 1)
    assert ended.duration_seconds >= 0 and "agent echo, attempt 1, " in ended.getMessage()


@pytest.mark.django_db
def test_a_failed_attempt_that_will_be_retried_says_so(make_agent, run, caplog):
    execution = execution_submit(agent=make_agent("boom"), max_attempts=1)
    caplog.set_level(logging.INFO)

    run(execution)

    assert [r.state for r in lines(caplog) if hasattr(r, "state")] == ["FAILED"]


@pytest.mark.django_db
def test_waking_workers_logs_nothing_at_info(make_agent, caplog, django_capture_on_commit_callbacks):
    """django-q2 logs "Enqueued [symphony] N" per wake-up at INFO unless its logger is set, which
    the settings do (it ignores its own log_level once a handler is configured)."""
    caplog.set_level(logging.INFO, logger="executions")
    with django_capture_on_commit_callbacks(execute=True) as woken:
        execution_submit(agent=make_agent("echo"))

    assert woken and not logging.getLogger("django-q").isEnabledFor(logging.INFO)
    assert lines(caplog) == []


class NoBeats:
    def __init__(self, *args, **kwargs):
        pass

    def beat(self):
        pass

    def end(self):
        pass


@pytest.mark.django_db  # its rollup passes read the (empty) tables
def test_an_idle_dispatcher_logs_only_its_start_and_stop(monkeypatch, caplog):
    stop = threading.Event()
    passes = []

    def a_pass_that_woke_a_worker():
        passes.append(1)
        if len(passes) == 3:
            stop.set()
        return {"reaped": 0, "woken": 1, "repaired": 0}

    monkeypatch.setattr(dispatcher, "dispatch_once", a_pass_that_woke_a_worker)
    monkeypatch.setattr(dispatcher, "heartbeats_forget_old", lambda: None)
    monkeypatch.setattr(dispatcher, "Beater", NoBeats)
    monkeypatch.setattr(dispatcher, "close_old_connections", lambda: None)
    caplog.set_level(logging.INFO)

    dispatcher.run_dispatcher(stop, interval=0)

    assert len(passes) == 3
    assert [r.getMessage().split(" (")[0] for r in lines(caplog)] == ["Dispatcher started", "Dispatcher stopped"]


def test_json_lines_hold_the_message_and_the_extra_fields():
    record = logging.LogRecord("executions.runner", logging.INFO, __file__, 1, "Execution %s ended", (7,), None)
    record.execution_id = 7

    line = json.loads(JsonFormatter().format(record))

    assert line["message"] == "Execution 7 ended" and line["execution_id"] == 7
    assert (line["level"], line["logger"]) == ("INFO", "executions.runner")
    assert line["time"].endswith("+00:00")


def test_the_cli_prints_no_django_q_lines_and_logs_json_when_asked(tmp_path):
    env = {"SYMPHONY_VAR_DIR": str(tmp_path), "DATABASE_URL": "", "REDIS_URL": None}
    assert manage("migrate", "--noinput", **env).returncode == 0
    assert manage("symphony", "load-demo", **env).returncode == 0

    submitted = manage("symphony", "submit", "--agent", "slow", "--input", '{"seconds": 0}', **env)
    as_json = manage(
        "shell", "-c", "import logging; logging.getLogger('symphony').warning('hi')", SYMPHONY_LOG_FORMAT="json", **env
    )

    assert submitted.returncode == 0, submitted.stderr
    assert submitted.stderr == ""  # once: "... INFO django-q Enqueued [symphony] 1"
    assert json.loads(as_json.stderr.strip().splitlines()[-1])["message"] == "hi"
