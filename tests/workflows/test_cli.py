"""``manage.py symphony workflow ...``: save, run and control workflows from a terminal."""

import io
import json

import pytest
from django.core.management import CommandError, call_command

from workflows.models import WorkflowDefinition, WorkflowRun, WorkflowStatus

pytestmark = pytest.mark.django_db


def symphony(*args) -> str:
    out = io.StringIO()
    call_command("symphony", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


@pytest.fixture
def definition_file(tmp_path, make_agent):
    make_agent("echo")
    path = tmp_path / "wf.yaml"
    path.write_text(
        "name: cli-demo\n"
        "steps:\n"
        "  - {id: hello, agent: echo, input: {who: '{{ input.who }}'}}\n"
        "  - {id: review, approval: {approvers: [alice]}, depends_on: [hello]}\n"
    )
    return path


def test_a_bad_definition_file_is_refused_naming_the_step_and_field(tmp_path, make_agent):
    make_agent("echo")
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"name": "bad", "steps": [
        {"id": "a", "agent": "echo", "depends_on": ["b"]},
        {"id": "b", "agent": "nobody", "depends_on": ["a"], "condition": "steps.("},
    ]}))  # fmt: skip
    with pytest.raises(CommandError) as refused:
        symphony("workflow", "save", str(path))
    message = str(refused.value)
    assert 'step "b", field "agent"' in message and "nobody" in message
    assert 'field "condition"' in message and "cycle" in message
    assert not WorkflowDefinition.objects.exists()


def test_run_from_a_file_then_approve_as_a_user(definition_file, django_user_model, work_off):
    django_user_model.objects.create_user("alice")
    run_id = int(symphony("workflow", "run", str(definition_file), "--input", '{"who": "world"}').split()[0])
    work_off()
    run = WorkflowRun.objects.get(pk=run_id)
    assert run.status == WorkflowStatus.WAITING
    assert "review" in symphony("workflow", "status", str(run_id)) and "WAITING" in symphony("workflow", "status",
                                                                                           str(run_id))  # fmt: skip

    with pytest.raises(CommandError, match="No user named 'mallory'"):
        symphony("workflow", "approve", str(run_id), "review", "--as", "mallory")
    assert symphony("workflow", "approve", str(run_id), "review", "--as", "alice").strip() == f"{run_id} COMPLETED"


def test_controls_and_their_refusals(definition_file, work_off):
    run_id = symphony("workflow", "run", str(definition_file)).split()[0]
    assert symphony("workflow", "pause", run_id).strip() == f"{run_id} PAUSED"
    with pytest.raises(CommandError, match="not PAUSED"):
        symphony("workflow", "resume", run_id) and symphony("workflow", "resume", run_id)
    assert symphony("workflow", "cancel", run_id).strip() == f"{run_id} CANCELLED"
    with pytest.raises(CommandError, match="No workflow run 9223372036854775808"):
        symphony("workflow", "status", "9223372036854775808")
    with pytest.raises(CommandError, match="--input is not valid JSON"):
        symphony("workflow", "run", "cli-demo", "--input", "{nope")
    with pytest.raises(CommandError, match="No workflow named 'ghost'"):
        symphony("workflow", "run", "ghost")


def test_load_demo_adds_the_demo_workflow():
    out = io.StringIO()
    call_command("symphony", "load-demo", stdout=out)
    assert "Demo workflow ready: demo (version 1)" in out.getvalue()
    call_command("symphony", "load-demo", stdout=io.StringIO())
    assert WorkflowDefinition.objects.get(name="demo").versions.count() == 1  # unchanged: no new version


def test_as_a_user_the_cli_reaches_only_what_that_user_may_see(definition_file, django_user_model):
    alice, _ = django_user_model.objects.create_user("alice"), django_user_model.objects.create_user("bob")
    run_id = symphony("workflow", "run", str(definition_file), "--as", "alice").split()[0]
    assert WorkflowRun.objects.get(pk=run_id).created_by == alice
    assert f"run {run_id}" in symphony("workflow", "status", run_id, "--as", "alice")

    for action in ("status", "pause", "cancel"):
        with pytest.raises(CommandError, match=f"No workflow run {run_id}"):
            symphony("workflow", action, run_id, "--as", "bob")
    assert symphony("workflow", "cancel", run_id, "--as", "alice").strip() == f"{run_id} CANCELLED"
