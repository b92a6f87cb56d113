import io
import threading
import time

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection

from executions.models import Execution
from executions.models import ExecutionState as S
from executions.runner import ExecutionRunner
from routing.models import AgentConfig


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
                "symphony", "submit", "--agent", "flaky", "--input", '{"fail_attempts": 5}',
                "--max-attempts", "1", "--wait", stdout=out, stderr=err,
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
