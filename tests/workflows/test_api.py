"""The workflows API: definitions, runs and their steps, each action through the services and
recorded with who did it; someone else's run is a 404, except to the approver a step names."""

import json

import pytest
from django.contrib.auth.models import Group, Permission

from workflows.models import RunEvent, WorkflowDefinition, WorkflowRun, WorkflowStatus

pytestmark = pytest.mark.django_db

DEFINITIONS = "/api/v1/workflows/definitions"
RUNS = "/api/v1/workflows/runs"
FLOW_YAML = """
name: ship
description: Draft, review, publish.
steps:
  - {id: draft, agent: echo, input: {text: "{{ input.text }}"}}
  - {id: review, depends_on: [draft], approval: {message: "Ship it?", approvers: [bob]}}
  - {id: publish, agent: echo, depends_on: [review]}
"""


def post(client, url, body=None):
    return client.post(url, json.dumps(body) if body is not None else "", content_type="application/json")


@pytest.fixture
def users(django_user_model):
    """alice starts runs; bob is the approver the flow names; mallory is anyone else; olga operates."""
    made = {name: django_user_model.objects.create_user(name) for name in ("alice", "bob", "mallory", "olga", "dora")}
    made["olga"].groups.add(Group.objects.get(name="operators"))
    made["dora"].user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="workflows", codename__in=["add_workflowdefinition", "change_workflowdefinition"]
        )
    )
    return made


@pytest.fixture
def as_user(client, users):
    def login(name: str):
        client.force_login(users[name])
        return client

    return login


@pytest.fixture
def flow(define):
    """The "ship" definition stored (agents echo and boom exist)."""
    from workflows.services import workflow_definition_save

    return workflow_definition_save(source=FLOW_YAML)


@pytest.fixture
def waiting(as_user, flow, work_off) -> int:
    """A run of alice's, its review step waiting for bob."""
    run_id = post(as_user("alice"), RUNS, {"definition": "ship", "input": {"text": "hi"}}).json()["id"]
    work_off()
    assert WorkflowRun.objects.get(pk=run_id).status == WorkflowStatus.WAITING
    return run_id


def actions(run_id: int) -> list[tuple[str, str | None]]:
    events = RunEvent.objects.filter(run_id=run_id, kind="action").select_related("actor").order_by("id")
    return [(event.data["action"], event.actor.get_username() if event.actor else None) for event in events]


# Definitions --------------------------------------------------------------------------------------


def test_saving_definitions_needs_the_permissions(as_user, define):
    response = post(as_user("alice"), DEFINITIONS, {"source": FLOW_YAML})

    assert response.status_code == 403
    assert not WorkflowDefinition.objects.exists()


def test_a_manager_saves_yaml_or_an_object_and_only_a_change_adds_a_version(as_user, define):
    client = as_user("dora")

    first = post(client, DEFINITIONS, {"source": FLOW_YAML})
    same = post(client, DEFINITIONS, {"source": FLOW_YAML})
    changed = post(client, DEFINITIONS, {"source": {"name": "ship", "steps": [{"id": "only", "agent": "echo"}]}})

    assert (first.status_code, same.status_code, changed.status_code) == (201, 200, 201)
    assert (first.json()["version"], same.json()["version"], changed.json()["version"]) == (1, 1, 2)
    assert [v["number"] for v in changed.json()["versions"]] == [2, 1]
    assert changed.json()["versions"][0]["created_by"] == "dora"
    assert [step["id"] for step in changed.json()["spec"]["steps"]] == ["only"]


def test_anyone_signed_in_lists_and_reads_definitions_and_their_versions(as_user, flow):
    from workflows.services import workflow_definition_save

    workflow_definition_save(source={"name": "ship", "steps": [{"id": "only", "agent": "echo"}]})
    client = as_user("mallory")

    assert client.get(DEFINITIONS).json() == [
        {"name": "ship", "description": "", "latest_version": 2,  # the new version has none
         "created_at": client.get(DEFINITIONS).json()[0]["created_at"]}
    ]  # fmt: skip
    latest = client.get(f"{DEFINITIONS}/ship").json()
    assert (latest["version"], latest["latest_version"]) == (2, 2)
    first = client.get(f"{DEFINITIONS}/ship", {"version": 1}).json()
    assert [step["id"] for step in first["spec"]["steps"]] == ["draft", "review", "publish"]
    assert client.get(f"{DEFINITIONS}/ship", {"version": 9}).status_code == 404
    assert client.get(f"{DEFINITIONS}/nothing").status_code == 404


def test_a_definition_with_problems_is_a_422_naming_each_step_and_field(as_user, define):
    source = {
        "name": "bad",
        "steps": [{"id": "a", "agent": "nobody"}, {"id": "b", "agent": "echo", "depends_on": ["missing"]}],
    }

    response = post(as_user("dora"), DEFINITIONS, {"source": source})

    assert response.status_code == 422
    locs = [error["loc"] for error in response.json()["errors"]]
    assert ["body", "a", "agent"] in locs and ["body", "b", "depends_on"] in locs
    assert post(as_user("dora"), DEFINITIONS, {"source": "steps: [unclosed"}).status_code == 422
    assert not WorkflowDefinition.objects.exists()


# Runs ---------------------------------------------------------------------------------------------


def test_a_run_starts_with_its_steps_and_who_started_it(as_user, flow, work_off):
    response = post(as_user("alice"), RUNS, {"definition": "ship", "input": {"text": "hi"}, "name": "Monday"})

    assert response.status_code == 201, response.content
    run = response.json()
    assert (run["name"], run["definition"], run["version"], run["status"]) == ("Monday", "ship", 1, "RUNNING")
    assert run["created_by"] == "alice" and run["input"] == {"text": "hi"}
    steps = {step["id"]: step for step in run["steps"]}
    assert list(steps) == ["draft", "review", "publish"]
    assert steps["draft"]["state"] == "RUNNING" and steps["draft"]["runs"][0]["execution_id"]
    assert steps["review"]["approval"] == {"message": "Ship it?", "approvers": ["bob"], "group": None}
    assert steps["publish"]["state"] == "NOT_STARTED"
    assert actions(run["id"]) == [("start", "alice")]

    work_off()
    draft = as_user("alice").get(f"{RUNS}/{run['id']}").json()["steps"][0]
    assert draft["state"] == "COMPLETED" and draft["output"]["echo"] == {"text": "hi"}


def test_the_list_shows_only_your_runs_filtered_and_paged(as_user, flow):
    alice = as_user("alice")
    ids = [post(alice, RUNS, {"definition": "ship"}).json()["id"] for _ in range(3)]
    post(as_user("mallory"), RUNS, {"definition": "ship"})
    WorkflowRun.objects.filter(pk=ids[0]).update(status=WorkflowStatus.PAUSED)
    alice = as_user("alice")

    first = alice.get(RUNS, {"limit": 2}).json()
    second = alice.get(first["next"]).json()

    assert [run["id"] for run in first["items"]] == ids[:0:-1]
    assert [run["id"] for run in second["items"]] == [ids[0]] and second["next"] is None
    assert [run["id"] for run in alice.get(RUNS, {"status": "PAUSED"}).json()["items"]] == [ids[0]]
    assert len(as_user("olga").get(RUNS).json()["items"]) == 4


def test_another_users_run_is_a_404_for_every_action(as_user, waiting):
    client = as_user("mallory")

    assert client.get(f"{RUNS}/{waiting}").status_code == 404
    for action in ("pause", "resume", "cancel"):
        assert post(client, f"{RUNS}/{waiting}/{action}").status_code == 404
    assert post(client, f"{RUNS}/{waiting}/rerun", {"from_step": "draft"}).status_code == 404
    assert post(client, f"{RUNS}/{waiting}/steps/review/approve").status_code == 404
    assert post(client, f"{RUNS}/{waiting}/steps/nothing/approve").status_code == 404
    assert post(client, f"{RUNS}/999999/pause").status_code == 404
    assert actions(waiting) == [("start", "alice")]


def test_pause_resume_and_cancel_are_recorded_with_who_and_refused_in_the_wrong_state(as_user, waiting):
    alice = as_user("alice")

    assert post(alice, f"{RUNS}/{waiting}/pause").json()["status"] == "PAUSED"
    refused = post(alice, f"{RUNS}/{waiting}/pause")
    assert refused.status_code == 409 and "only a pending, running or waiting run can pause" in refused.json()["detail"]
    assert post(alice, f"{RUNS}/{waiting}/resume").json()["status"] == "WAITING"
    assert post(as_user("olga"), f"{RUNS}/{waiting}/cancel").json()["status"] == "CANCELLED"
    assert post(as_user("olga"), f"{RUNS}/{waiting}/cancel").status_code == 409
    assert post(as_user("olga"), f"{RUNS}/{waiting}/resume").status_code == 409

    assert actions(waiting) == [("start", "alice"), ("pause", "alice"), ("resume", "alice"), ("cancel", "olga")]


def test_the_named_approver_decides_a_run_that_is_not_theirs(as_user, waiting, work_off):
    response = post(as_user("bob"), f"{RUNS}/{waiting}/steps/review/approve", {"comment": "ship it"})

    assert response.status_code == 200, response.content
    assert response.json() == {"run": waiting, "step": "review", "approved": True, "status": "RUNNING"}
    assert as_user("bob").get(f"{RUNS}/{waiting}").status_code == 404  # deciding is not seeing
    work_off()
    run = as_user("alice").get(f"{RUNS}/{waiting}").json()
    review = next(step for step in run["steps"] if step["id"] == "review")
    assert run["status"] == "COMPLETED"
    assert (review["runs"][0]["decided_by"], review["runs"][0]["comment"]) == ("bob", "ship it")
    assert actions(waiting) == [("start", "alice"), ("approve", "bob")]


def test_the_owner_may_not_decide_a_step_that_names_someone_else(as_user, waiting):
    response = post(as_user("alice"), f"{RUNS}/{waiting}/steps/review/approve")

    assert response.status_code == 403
    assert WorkflowRun.objects.get(pk=waiting).status == WorkflowStatus.WAITING


def test_a_rejection_fails_the_run_and_a_second_decision_is_a_409(as_user, waiting):
    bob = as_user("bob")

    rejected = post(bob, f"{RUNS}/{waiting}/steps/review/reject", {"comment": "not yet"})
    again = post(bob, f"{RUNS}/{waiting}/steps/review/approve")

    assert rejected.json()["status"] == "FAILED"
    assert again.status_code == 409 and "not waiting for approval" in again.json()["detail"]
    assert actions(waiting) == [("start", "alice"), ("reject", "bob")]


def test_a_step_naming_nobody_is_decided_by_the_owner_or_an_operator_only(as_user, define, work_off):
    from workflows.services import workflow_definition_save

    workflow_definition_save(source={"name": "gate", "steps": [{"id": "ok", "approval": {"message": "?"}}]})
    first = post(as_user("alice"), RUNS, {"definition": "gate"}).json()["id"]
    second = post(as_user("alice"), RUNS, {"definition": "gate"}).json()["id"]

    assert post(as_user("mallory"), f"{RUNS}/{first}/steps/ok/approve").status_code == 404
    assert post(as_user("alice"), f"{RUNS}/{first}/steps/ok/approve").json()["status"] == "COMPLETED"
    assert post(as_user("olga"), f"{RUNS}/{second}/steps/ok/approve").json()["status"] == "COMPLETED"


def test_a_failed_run_re_runs_from_a_step_and_a_running_one_is_a_409(as_user, define, work_off):
    from workflows.services import workflow_definition_save

    steps = [{"id": "a", "agent": "echo"}, {"id": "b", "agent": "boom", "depends_on": ["a"]}]
    workflow_definition_save(source={"name": "fails", "steps": steps})
    alice = as_user("alice")
    run_id = post(alice, RUNS, {"definition": "fails"}).json()["id"]
    assert post(alice, f"{RUNS}/{run_id}/rerun", {"from_step": "b"}).status_code == 409  # still running
    work_off()
    assert alice.get(f"{RUNS}/{run_id}").json()["status"] == "FAILED"

    again = post(alice, f"{RUNS}/{run_id}/rerun", {"from_step": "b", "input": {"n": 2}})

    assert again.status_code == 200, again.content
    assert (again.json()["status"], again.json()["input"]) == ("RUNNING", {"n": 2})
    assert post(alice, f"{RUNS}/{run_id}/cancel").status_code == 200
    assert post(alice, f"{RUNS}/{run_id}/rerun", {"from_step": "zzz"}).status_code == 409
    assert actions(run_id) == [("start", "alice"), ("rerun", "alice"), ("cancel", "alice")]


@pytest.mark.parametrize(
    "url, body, loc",
    [
        (RUNS, {"input": {}}, ["body", "definition"]),
        (RUNS, {"definition": "nothing"}, ["body", "definition"]),
        (RUNS, {"definition": "ship", "name": 5}, ["body", "name"]),
        (RUNS, {"definition": ["ship"]}, ["body", "definition"]),
        (f"{RUNS}/{{run}}/rerun", {}, ["body", "from_step"]),
        (f"{RUNS}/{{run}}/rerun", {"from_step": "Not An Id"}, ["body", "from_step"]),
        (f"{RUNS}/{{run}}/steps/review/approve", {"comment": "x" * 2001}, ["body", "comment"]),
        (f"{RUNS}/{{run}}/steps/review/approve", {"comment": 7}, ["body", "comment"]),
        (DEFINITIONS, {"source": 12}, ["body", "source"]),
        (f"{RUNS}/99999999999999999999999/pause", None, ["path", "run_id"]),
    ],
)
def test_bad_requests_are_422_problems_naming_the_field(as_user, waiting, url, body, loc):
    response = post(as_user("dora" if url == DEFINITIONS else "alice"), url.replace("{run}", str(waiting)), body)

    assert response.status_code == 422, response.content
    assert loc in [error["loc"][: len(loc)] for error in response.json()["errors"]]
    assert actions(waiting) == [("start", "alice")]


def test_a_bad_status_filter_is_a_422(as_user, flow):
    response = as_user("alice").get(RUNS, {"status": "SLEEPING"})

    assert response.status_code == 422 and response.json()["errors"][0]["loc"] == ["query", "status"]
    assert as_user("alice").get(RUNS, {"limit": 0}).status_code == 422
