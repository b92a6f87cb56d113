"""The JSON API with API tokens: used, refused, revoked at once, exempt from CSRF, throttled."""

import json
import uuid

import pytest
from django.test import Client

from executions.models import Execution
from symphony.api import api
from symphony.tokens import token_create, token_revoke

PROBLEM = "application/problem+json"


@pytest.fixture(autouse=True)
def own_throttle_counts(monkeypatch):
    """Each test counts from zero: the counts live in the cache, which outlives a test's database."""
    run = uuid.uuid4().hex
    for throttle in api.throttle:
        monkeypatch.setattr(throttle, "cache_format", f"throttle_{run}_%(scope)s_%(ident)s")


def call(method: str, path: str, token: str | None = None, body=None, client: Client | None = None):
    client = client or Client(enforce_csrf_checks=True)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    data = json.dumps(body) if body is not None else None
    if method == "get":
        return client.get(f"/api/v1{path}", headers=headers)
    return client.post(f"/api/v1{path}", data, content_type="application/json", headers=headers)


def test_a_token_acts_as_its_user_without_csrf(alice, demo_agents):
    _, raw = token_create(user=alice, name="ci")
    response = call("post", "/executions", raw, {"agent": "text-stats", "input": {"text": "hi"}})
    assert response.status_code == 201, response.content
    assert Execution.objects.get().submitted_by == alice
    assert [item["id"] for item in call("get", "/executions", raw).json()["items"]] == [response.json()["id"]]


def test_a_revoked_token_fails_at_once(alice, demo_agents):
    token, raw = token_create(user=alice)
    assert call("get", "/executions", raw).status_code == 200
    token_revoke(token=token)
    response = call("get", "/executions", raw)
    assert response.status_code == 401 and response["Content-Type"] == PROBLEM
    assert "revoked" in response.json()["detail"]
    assert call("post", "/executions", raw, {"agent": "text-stats"}).status_code == 401
    assert Execution.objects.count() == 0


def test_a_wrong_token_fails_even_with_a_session(alice, demo_agents):
    client = Client()
    client.force_login(alice)
    assert call("get", "/executions", client=client).status_code == 200
    response = call("get", "/executions", "sym_notreal_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", client=client)
    assert response.status_code == 401


def test_a_token_of_an_inactive_user_fails(alice):
    _, raw = token_create(user=alice)
    alice.is_active = False
    alice.save()
    assert call("get", "/executions", raw).status_code == 401


def test_over_the_rate_a_token_gets_429_with_retry_after(alice, monkeypatch):
    per_token = next(throttle for throttle in api.throttle if throttle.scope == "auth")
    monkeypatch.setattr(per_token, "num_requests", 3)
    _, raw = token_create(user=alice)
    _, other = token_create(user=alice)
    assert [call("get", "/tasks", raw).status_code for _ in range(3)] == [200, 200, 200]
    refused = call("get", "/tasks", raw)
    assert refused.status_code == 429 and refused["Content-Type"] == PROBLEM
    assert int(refused["Retry-After"]) >= 1
    assert call("get", "/tasks", other).status_code == 200  # counted per token


def test_over_the_rate_a_user_gets_429_over_all_their_tokens(alice, monkeypatch):
    per_user = next(throttle for throttle in api.throttle if throttle.scope == "user")
    monkeypatch.setattr(per_user, "num_requests", 2)
    tokens = [token_create(user=alice)[1] for _ in range(3)]
    assert [call("get", "/tasks", raw).status_code for raw in tokens] == [200, 200, 429]
