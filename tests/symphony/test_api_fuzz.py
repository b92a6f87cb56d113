"""Every operation of ``/api/v1/`` run with generated data (schemathesis), authenticated.

The schema is the one the app serves (``/api/v1/openapi.json`` through
``symphony.wsgi``), so an operation added to any router is fuzzed without a
change here. Each answer must not be a 5xx, must match its declared response
schema and content type (a refusal is ``application/problem+json``), and an
input the schema forbids must be refused with a 4xx. The database holds demo
agents and executions in every state, with small ids, so that generated ids
often name real ones and the paths past the lookup run too.
"""

import itertools

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.test import Client
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from executions import services
from executions.models import ExecutionState as S
from executions.state import transition
from routing.agents.demo import DEMO_AGENTS
from routing.services import demo_agents_load
from symphony.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
# The credentials are ours (below), not generated: a random bearer token only ever meets the 401.
schema.config.generation.update(with_security_parameters=False)


@schema.hook
def flatmap_path_parameters(context, path_parameters: dict | None) -> st.SearchStrategy:
    """An id in a path is often one the seed made (ids restart at 1): the paths past the lookup run too."""
    if not path_parameters:
        return st.just(path_parameters)
    return st.fixed_dictionaries(
        {
            name: st.one_of(st.just(value), st.integers(1, SEEDED + 1)) if type(value) is int else st.just(value)
            for name, value in path_parameters.items()
        }
    )


@schema.hook
def flatmap_body(context, body) -> st.SearchStrategy:
    """A short agent name is often a real one, so that submits and tasks get past the agent lookup."""
    if not isinstance(body, dict) or not isinstance(body.get("agent"), str) or len(body["agent"]) > 100:
        return st.just(body)
    return st.one_of(st.just(body), st.sampled_from(AGENTS).map(lambda name: {**body, "agent": name}))


def fresh_idempotency_key(case) -> None:
    """A valid Idempotency-Key made unique per case: one reused with another body is rightly refused,
    which would leave most generated submits at that refusal (hooks do not reach every phase)."""
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and 1 <= len(key) <= 150 and key.isprintable():
        case.headers["Idempotency-Key"] = f"{key}-{next(KEYS)}"


CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    content_type_conformance,
    status_code_conformance,
    negative_data_rejection,
]
# Small enough for the whole module to take well under a minute on a busy 2-core machine.
FUZZ_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
# The way an executed path reaches each state: QUEUED is where a submit leaves it.
PATHS = {
    S.QUEUED: [],
    S.RUNNING: [S.PREPARING, S.RUNNING],
    S.COMPLETED: [S.PREPARING, S.RUNNING, S.COMPLETED],
    S.FAILED: [S.PREPARING, S.RUNNING, S.FAILED],
    S.CANCELLED: [S.CANCELLED],
}


def session_login(user: User) -> dict:
    """A logged-in browser's credentials: its session cookie, and the CSRF token unsafe methods need."""
    client = Client()
    client.force_login(user)
    client.get("/accounts/login/")  # sets the CSRF cookie
    csrf = client.cookies["csrftoken"].value
    return {
        "cookies": {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf},
        "headers": {"X-CSRFToken": csrf},
    }


def bearer_token(user: User) -> dict:
    """An API client's credentials: a personal token."""
    from symphony.tokens import token_create

    _, raw = token_create(user=user, name="fuzz")
    return {"headers": {"Authorization": f"Bearer {raw}"}}


AGENTS = [agent["name"] for agent in DEMO_AGENTS]
KEYS = itertools.count()
SEEDED = len(PATHS) + 1  # executions and tasks, ids 1 to SEEDED; one more id finds nothing


def seed(user: User, other: User) -> None:
    """Demo agents; a few executions of ``user``'s in each state, and one of ``other``'s it may not see."""
    agents = demo_agents_load()
    for number, (state, path) in enumerate(PATHS.items()):
        execution = services.execution_submit(
            agent=agents[number % len(agents)],
            input_data={"query": f"fuzz {state.lower()}"},
            tags=["fuzz", state.lower()],
            submitted_by=user,
        )
        current = S.QUEUED
        for step in path:
            transition(execution.pk, step, expected=[current])
            current = step
    services.execution_submit(agent=agents[0], input_data="not yours", submitted_by=other)


@pytest.fixture
def credentials(django_db_reset_sequences) -> dict:
    """What every call sends to authenticate (``call_and_validate`` keyword arguments)."""
    user = User.objects.create_user("fuzzer", password="fuzz-password")
    other = User.objects.create_user("other", password="other-password")
    seed(user, other)
    return session_login(user)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation(case, credentials):
    fresh_idempotency_key(case)
    case.call_and_validate(checks=CHECKS, **credentials)
