import io
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from executions.models import Execution
from executions.models import ExecutionState as S
from executions.runner import ExecutionRunner
from routing.models import AgentConfig

ROOT = Path(__file__).resolve().parents[2]


def symphony(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("symphony", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def work_in_background(count: int = 1) -> threading.Thread:
    """A stand-in worker: runs each queued execution as it appears."""

    def work():
        done = 0
        deadline = time.monotonic() + 20
        while done < count and time.monotonic() < deadline:
            for pk in Execution.objects.filter(state=S.QUEUED).values_list("pk", flat=True):
                if ExecutionRunner(pk).run().state:
                    done += 1
            time.sleep(0.02)
        connection.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


@pytest.mark.django_db
def test_submit_prints_the_execution_id(demo_agents):
    out, _ = symphony("submit", "--agent", "text-stats", "--input", '{"text": "One. Two."}')
    execution = Execution.objects.get()
    assert out.strip() == str(execution.pk)
    assert execution.state == S.QUEUED and execution.task.input_data == {"text": "One. Two."}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--agent", "text-stats", "--input", "{nope"], "not valid JSON"),
        (["--agent", "nobody"], "No agent named 'nobody' (known: flaky, slow, text-stats)"),
        (["--agent", "slow", "--timeout", "-1"], "positive number"),
    ],
)
def test_submit_refuses_bad_input_clearly(demo_agents, args, message):
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        symphony("submit", *args)
    assert not Execution.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--priority", "2147483648"], "priority must be at least -1000000 and at most 1000000 (got 2147483648)."),
        (["--max-attempts", "1000"], "max_attempts must be at least 1 and at most 100 (got 1000)."),
        (["--timeout", "nan"], "timeout must be a positive number of seconds (got nan)."),
        (["--timeout", "inf"], "timeout must be a positive number of seconds (got inf)."),
        (["--name", "caf\udce9"], "name is not valid UTF-8: it holds '\\udce9', a lone surrogate"),
        (["--input", '{"t": "\udcff"}'], "input is not valid UTF-8"),
        (["--tags", "sql,\udcff"], "tags is not valid UTF-8"),
        (["--input", "[" * 1000 + "]" * 1000], "nested more than 64 levels deep."),
        (["--input", "9" * 5_000], "--input holds a number with too many digits to read."),
        (["--priority", "1e20"], "argument --priority: invalid int value: '1e20'"),
    ],
)
def test_submit_refuses_out_of_range_arguments_with_a_command_error(demo_agents, args, message):
    with pytest.raises(CommandError) as refused:
        symphony("submit", "--agent", "slow", *args)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not Execution.objects.exists()


@pytest.mark.django_db
def test_an_agent_name_that_is_not_utf8_is_refused(demo_agents):
    with pytest.raises(CommandError, match="--agent is not valid UTF-8"):
        symphony("submit", "--agent", "sl\udcffow")


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["wait", "cancel", "retry"])
@pytest.mark.parametrize("execution_id", [0, 2**63, 10**30])
def test_ids_no_row_can_have_are_no_execution(command, execution_id):
    with pytest.raises(CommandError, match=f"^No execution {execution_id}.$"):
        symphony(command, str(execution_id))


def test_a_real_command_line_refuses_bytes_that_are_not_utf8_in_one_line(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SYMPHONY_", "DJANGO_", "DATABASE_", "PYTEST_")) and key != "REDIS_URL"
    }
    env.update(
        DJANGO_SETTINGS_MODULE="symphony.settings",
        DJANGO_DEBUG="1",
        DJANGO_SECRET_KEY="command-line-test-" + "x" * 40,
        SYMPHONY_VAR_DIR=str(tmp_path),
    )
    cases = [
        ([b"submit", b"--name", b"caf\xe9"], "CommandError: name is not valid UTF-8: it holds '\\udce9'"),
        ([b"wait", str(2**63).encode()], f"CommandError: No execution {2**63}."),
    ]
    for argv, expected in cases:
        done = subprocess.run(
            [sys.executable, b"manage.py", b"symphony", *argv], cwd=ROOT, env=env, capture_output=True, timeout=120
        )
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        assert done.returncode == 1, lines
        assert len(lines) == 1 and lines[0].startswith(expected), lines


@pytest.mark.django_db(transaction=True)
def test_submit_wait_shows_progress_then_the_result(demo_agents):
    worker = work_in_background()
    out, _ = symphony("submit", "--agent", "text-stats", "--input", '{"text": "Cats sit. Dogs run far."}', "--wait")
    worker.join(5)

    lines = out.splitlines()
    assert lines[0].isdigit()
    assert any("COMPLETED" in line and "100.0%" in line for line in lines)
    assert '"words": 5' in out


@pytest.mark.django_db(transaction=True)
def test_submit_wait_exits_non_zero_with_the_error_on_failure(demo_agents):
    worker = work_in_background()
    with pytest.raises(SystemExit) as exited:
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command(
                "symphony",
                "submit",
                "--agent",
                "flaky",
                "--input",
                '{"fail_attempts": 5}',
                "--max-attempts",
                "1",
                "--wait",
                stdout=out,
                stderr=err,
            )
        finally:
            worker.join(5)
    assert exited.value.code == 1
    assert "FAILED: routing.agents.demo.DemoAgentError: Attempt 1 fails on purpose" in err.getvalue()


@pytest.mark.django_db
def test_cancel_and_retry_from_the_cli(demo_agents):
    symphony("submit", "--agent", "slow")
    execution = Execution.objects.get()
    out, _ = symphony("cancel", str(execution.pk))
    assert out.strip() == f"{execution.pk} CANCELLED"
    with pytest.raises(CommandError, match="is CANCELLED, not FAILED"):
        symphony("retry", str(execution.pk))
    with pytest.raises(CommandError, match="No execution 999"):
        symphony("cancel", "999")


@pytest.mark.django_db
def test_load_demo_is_idempotent():
    symphony("load-demo")
    out, _ = symphony("load-demo")
    assert "text-stats" in out
    assert AgentConfig.objects.count() == 3


@pytest.mark.django_db
def test_ensure_admin_generates_a_password_once(settings):
    settings.SYMPHONY_ADMIN_PASSWORD = ""
    out, _ = symphony("ensure-admin")
    password = out.split("password: ")[1].split()[0]
    assert get_user_model().objects.get(username="admin").check_password(password)

    out, _ = symphony("ensure-admin")
    assert "exists" in out and password not in out


@pytest.mark.django_db
def test_ensure_admin_takes_the_password_from_the_environment(settings):
    settings.SYMPHONY_ADMIN_PASSWORD = "correct horse battery"
    symphony("ensure-admin")
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.check_password("correct horse battery")


@pytest.mark.django_db
def test_as_a_user_the_cli_submits_for_them_and_acts_only_on_theirs(demo_agents, django_user_model):
    alice, _ = django_user_model.objects.create_user("alice"), django_user_model.objects.create_user("bob")
    out, _ = symphony("submit", "--agent", "slow", "--as", "alice")
    execution = Execution.objects.get(pk=int(out))
    assert execution.submitted_by == alice

    for command in ("cancel", "wait", "retry"):
        with pytest.raises(CommandError, match=f"No execution {execution.pk}"):
            symphony(command, str(execution.pk), "--as", "bob")
    with pytest.raises(CommandError, match="No user named 'mallory'"):
        symphony("cancel", str(execution.pk), "--as", "mallory")
    assert Execution.objects.get(pk=execution.pk).state == S.QUEUED

    out, _ = symphony("cancel", str(execution.pk), "--as", "alice")
    assert out.strip() == f"{execution.pk} CANCELLED"
    assert execution.events.get(to_state=S.CANCELLED).actor == alice
