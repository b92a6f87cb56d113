"""Bad requests to ``/api/v1/``: each one a 4xx problem (RFC 9457) that says what is wrong, never a 500.

The fuzzing in ``test_api_fuzz.py`` finds what the schema lets it generate;
these are the inputs a schema cannot describe (bytes that are not JSON or not
UTF-8, a body too large, nesting past any limit) and the ones a client gets
wrong most often, each checked for its status, its content type and its
``detail``.
"""

import json

import pytest
from django.contrib.auth.models import User
from django.test import Client

from executions import services
from executions.models import Execution, Task
from symphony.problems import CONTENT_TYPE

pytestmark = pytest.mark.django_db

HUGE = 10**40
EXECUTIONS = "/api/v1/executions"
TASKS = "/api/v1/tasks"


@pytest.fixture
def user(db) -> User:
    return User.objects.create_user("alice", password="alice-password")


@pytest.fixture
def client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def execution(demo_agents, user) -> Execution:
    return services.execution_submit(agent=demo_agents["text-stats"], input_data={"text": "hi"}, submitted_by=user)


def post(client: Client, url: str, body, *, content_type: str = "application/json"):
    data = body if isinstance(body, bytes) else json.dumps(body)
    return client.post(url, data=data, content_type=content_type)


def refused(response, status: int, *, detail: str = "") -> dict:
    """The response is a problem with ``status``, a ``detail`` holding ``detail``, and no traceback."""
    assert response.status_code == status, response.content[:500]
    assert response["Content-Type"] == CONTENT_TYPE
    problem = response.json()
    assert problem["status"] == status
    assert problem["title"] and problem["type"] == "about:blank"
    assert detail.lower() in problem["detail"].lower(), problem["detail"]
    assert "Traceback" not in response.content.decode()
    return problem


def field_errors(problem: dict) -> list[list[str]]:
    return [error["loc"] for error in problem.get("errors", [])]


# Bodies that are not JSON objects -------------------------------------------------------


def test_invalid_json_is_a_400_that_says_where(client):
    problem = refused(post(client, EXECUTIONS, b'{"agent": "text-stats",'), 400, detail="not valid JSON")
    assert "line 1" in problem["detail"]


def test_a_body_that_is_not_utf8_is_a_400(client):
    refused(post(client, EXECUTIONS, b'{"agent": "\xff\xfe"}'), 400, detail="not UTF-8")


def test_an_empty_body_is_a_422_naming_the_body(client):
    problem = refused(post(client, EXECUTIONS, b""), 422, detail="body")
    assert field_errors(problem) == [["body"]]
    refused(post(client, TASKS, b""), 422, detail="body")


@pytest.mark.parametrize(
    "body, kind",
    [([{"agent": "text-stats"}], "an array"), ("text-stats", "a string"), (42, "a number"), (None, "null")],
)
def test_a_body_that_is_not_an_object_is_a_422(client, body, kind):
    refused(post(client, EXECUTIONS, body), 422, detail=f"must be a JSON object, not {kind}")
    refused(post(client, TASKS, body), 422, detail="must be a JSON object")
    assert not Execution.objects.exists() and not Task.objects.exists()


def test_a_rerun_body_that_is_not_an_object_is_a_422(client, execution):
    services.execution_cancel(execution=execution)
    refused(post(client, f"{EXECUTIONS}/{execution.pk}/rerun", [1, 2]), 422, detail="must be a JSON object")
    assert Execution.objects.count() == 1


def test_a_5_mb_body_is_a_413(client):
    body = {"agent": "text-stats", "input": "x" * (5 * 1024 * 1024)}
    refused(post(client, EXECUTIONS, body), 413, detail="too large")
    assert not Execution.objects.exists()


def test_a_body_nested_past_what_json_reads_is_a_400(client):
    bomb = b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    refused(post(client, EXECUTIONS, bomb), 400, detail="nested too deeply")


def test_an_input_nested_past_the_limit_is_a_422(client, demo_agents, settings):
    deep = b'{"agent": "text-stats", "input": ' + b"[" * 200 + b"]" * 200 + b"}"
    problem = refused(post(client, EXECUTIONS, deep), 422, detail=f"more than {settings.SYMPHONY_MAX_JSON_DEPTH}")
    assert field_errors(problem) == [["body", "input"]]


def test_multipart_without_a_boundary_is_a_400(user):
    # The session's CSRF check is what reads a form body, so it runs here as in a browser.
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/accounts/login/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        EXECUTIONS, data=b'{"agent": "text-stats"}', content_type="multipart/form-data", headers={"X-CSRFToken": token}
    )
    refused(response, 400, detail="cannot be read")


# Fields of the wrong type or out of range -------------------------------------------------


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("priority", "high", "valid integer"),
        ("priority", True, "valid integer"),
        ("priority", 1.5, "valid integer"),
        ("max_attempts", "3", "valid integer"),
        ("timeout", "10", "valid number"),
        ("timeout", False, "valid number"),
        ("tags", "one,two", "valid list"),
        ("tags", [1], "valid string"),
        ("metadata", [], "valid dictionary"),
        ("name", 7, "valid string"),
        ("agent", {"name": "text-stats"}, "valid string"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_422_naming_it(client, demo_agents, field, value, says):
    problem = refused(post(client, EXECUTIONS, {"agent": "text-stats", field: value}), 422, detail=says)
    assert [loc[:2] for loc in field_errors(problem)] == [["body", field]]
    assert not Execution.objects.exists()


@pytest.mark.parametrize(
    "field, value",
    [
        ("priority", HUGE),
        ("priority", -HUGE),
        ("max_attempts", HUGE),
        ("max_attempts", 0),
        ("timeout", HUGE),
        ("timeout", -1),
        ("timeout", 0),
        ("timeout", -0.0),
        ("task_id", 0),
    ],
)
def test_a_number_out_of_range_is_a_422_naming_it(client, demo_agents, field, value):
    problem = refused(post(client, EXECUTIONS, {"agent": "text-stats", field: value}), 422, detail=field)
    assert field_errors(problem) == [["body", field]]


def test_a_task_id_past_any_row_is_a_422(client, demo_agents):
    problem = refused(post(client, EXECUTIONS, {"task_id": HUGE}), 422, detail="task_id")
    assert field_errors(problem) == [["body", "task_id"]]


def test_a_task_priority_out_of_range_is_a_422(client):
    refused(post(client, TASKS, {"name": "t", "priority": HUGE}), 422, detail="priority")


@pytest.mark.parametrize(
    "body, says",
    [
        ({"agent": "text-stats", "strategy": "fastest"}, "strategy"),
        ({"name": "t", "routing_strategy": "fastest"}, "routing_strategy"),
    ],
)
def test_an_unknown_strategy_is_a_422_listing_the_known_ones(client, demo_agents, body, says):
    url = EXECUTIONS if "strategy" in body else TASKS
    problem = refused(post(client, url, body), 422, detail=says)
    assert "round_robin" in problem["detail"]


def test_an_unknown_agent_is_a_422_naming_it(client, demo_agents):
    problem = refused(post(client, EXECUTIONS, {"agent": "nobody"}), 422, detail="No agent called 'nobody'")
    assert field_errors(problem) == [["body", "agent"]]


# Text: NUL, control characters, lone surrogates --------------------------------------------


def test_nul_in_text_is_stored_as_a_replacement_character(client, demo_agents):
    """The project's rule for NUL (executions.validation): PostgreSQL cannot hold it, so it is
    replaced with U+FFFD and the submit goes on; a refusal would lose the rest of a pasted text."""
    body = {"agent": "slow", "name": "a\x00b", "tags": ["t\x00"], "input": {"k\x00": "v\x00"}}
    response = post(client, EXECUTIONS, body)
    assert response.status_code == 201, response.content
    made = response.json()
    assert (made["name"], made["tags"], made["input"]) == ("a\ufffdb", ["t\ufffd"], {"k\ufffd": "v\ufffd"})


def test_control_characters_in_text_are_kept(client, demo_agents):
    body = {"agent": "text-stats", "name": "bell\x07 tab\t esc\x1b", "input": {"text": "line\r\nfeed\x7f"}}
    response = post(client, EXECUTIONS, body)
    assert response.status_code == 201, response.content
    assert (response.json()["name"], response.json()["input"]) == (body["name"], body["input"])


@pytest.mark.parametrize(
    "field, value, says",
    [
        ("name", '"a\\ud800"', "unable to parse raw data as a unicode string"),
        ("tags", '["a\\ud800"]', "unable to parse raw data as a unicode string"),
        ("input", '["a\\ud800"]', "not valid UTF-8"),
        ("metadata", '{"\\ud800": 1}', "not valid UTF-8"),
    ],
)
def test_a_lone_surrogate_is_a_422(client, demo_agents, field, value, says):
    body = b'{"agent": "text-stats", "' + field.encode() + b'": ' + value.encode() + b"}"
    problem = refused(post(client, EXECUTIONS, body), 422, detail=says)
    assert [loc[:2] for loc in field_errors(problem)] == [["body", field]]
    assert not Execution.objects.exists()


def test_nul_or_a_surrogate_in_an_agent_name_is_a_4xx(client, demo_agents):
    refused(post(client, EXECUTIONS, {"agent": "text\x00stats"}), 422)
    refused(post(client, EXECUTIONS, b'{"agent": "text\\ud800stats"}'), 422)


# Paths and query strings ------------------------------------------------------------------


@pytest.mark.parametrize(
    "url, says",
    [
        (f"{EXECUTIONS}/{HUGE}", "execution_id"),
        (f"{EXECUTIONS}/{HUGE}/events", "execution_id"),
        (f"{EXECUTIONS}/1/events?after={HUGE}", "after"),
        (f"{TASKS}/{HUGE}", "task_id"),
        (f"{EXECUTIONS}?before={HUGE}", "before"),
        (f"{EXECUTIONS}?before={-HUGE}", "before"),
        (f"{TASKS}?before={HUGE}", "before"),
    ],
)
def test_an_id_past_any_row_is_a_422_naming_it(client, url, says):
    refused(client.get(url), 422, detail=says)


@pytest.mark.parametrize("action", ["cancel", "retry", "rerun"])
def test_acting_on_an_id_past_any_row_is_a_422(client, action):
    response = client.post(f"{EXECUTIONS}/{HUGE}/{action}", content_type="application/json")
    refused(response, 422, detail="execution_id")


def test_the_largest_id_is_just_not_found(client):
    refused(client.get(f"{EXECUTIONS}/{2**63 - 1}"), 404, detail=str(2**63 - 1))


@pytest.mark.parametrize(
    "url, says",
    [
        (f"{EXECUTIONS}?limit={HUGE}", "limit"),
        (f"{EXECUTIONS}?limit=0", "limit"),
        (f"{TASKS}?limit={HUGE}", "limit"),
        (f"{EXECUTIONS}/1/events?limit={HUGE}", "limit"),
        (f"{EXECUTIONS}?before=soon", "before"),
        (f"{EXECUTIONS}?state=BOGUS", "state"),
        (f"{EXECUTIONS}?state=QUEUED&state=queued", "state"),
        (f"{EXECUTIONS}?created_after=yesterday", "created_after"),
        (f"{EXECUTIONS}?created_after=1700000000", "not a number"),
        (f"{EXECUTIONS}/abc", "execution_id"),
    ],
)
def test_a_bad_query_or_path_value_is_a_422_naming_it(client, url, says):
    refused(client.get(url), 422, detail=says)


def test_nul_in_a_query_is_not_a_server_error(client, execution):
    for url in (f"{EXECUTIONS}?q=%00", f"{EXECUTIONS}?tag=%00", f"{EXECUTIONS}?agent=%00"):
        response = client.get(url)
        assert response.status_code in (200, 422), response.content


@pytest.mark.parametrize(
    "after, before",
    [
        ("1999-12-31T05:00:00-19:00", "2999-01-01T00:00:00%2B18:30"),
        ("0001-01-01T00:00:00-00:01", "9999-12-31T23:00:00Z"),
    ],
)
def test_any_rfc3339_offset_is_a_filter(client, execution, after, before):
    response = client.get(f"{EXECUTIONS}?created_after={after}&created_before={before}")
    assert response.status_code == 200 and [e["id"] for e in response.json()["items"]] == [execution.pk]


@pytest.mark.parametrize("moment", ["0001-01-01T00:00:00%2B01:00", "9999-12-31T23:59:59-01:00"])
def test_a_time_past_the_calendar_in_utc_is_a_422(client, moment):
    refused(client.get(f"{EXECUTIONS}?created_after={moment}"), 422, detail="out of range")


def test_a_naive_created_after_is_read_as_utc(client, execution):
    response = client.get(f"{EXECUTIONS}?created_after=2000-01-01T00:00:00")
    assert response.status_code == 200 and [e["id"] for e in response.json()["items"]] == [execution.pk]


# Refusals made outside the operations --------------------------------------------------------


def test_no_credentials_is_a_401_problem_with_a_challenge(db):
    response = Client().get(EXECUTIONS)
    refused(response, 401, detail="Authentication")
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_a_session_without_the_csrf_token_is_a_403_problem(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    refused(post(client, EXECUTIONS, {"agent": "text-stats"}), 403, detail="CSRF")


@pytest.mark.parametrize(
    "method, url, allowed",
    [("put", EXECUTIONS, "GET, POST"), ("delete", f"{EXECUTIONS}/1", "GET"), ("get", f"{EXECUTIONS}/1/cancel", "POST")],
)
def test_a_method_a_path_does_not_have_is_a_405_problem(client, method, url, allowed):
    response = getattr(client, method)(url)
    refused(response, 405, detail=f"it allows {allowed}")
    assert {m.strip() for m in response["Allow"].split(",")} == set(allowed.split(", "))


def test_an_unknown_api_path_is_a_404_problem(client):
    refused(client.get("/api/v1/nothing-here"), 404, detail="no API endpoint")


def test_pages_outside_the_api_keep_their_own_errors(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and not response["Content-Type"].startswith(CONTENT_TYPE)
