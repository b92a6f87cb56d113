"""Every operation of ``/api/v1/`` run with generated data (schemathesis), authenticated.

The schema is the one the app serves (``/api/v1/openapi.json`` through
``symphony.wsgi``), so an operation added to any router is fuzzed without a
change here. Each answer must not be a 5xx, must match its declared status
codes, response schema and content type (a refusal is
``application/problem+json``), and a request the schema forbids must be refused
with a 4xx. The database holds the demo agents and executions in every state,
and generated ids are often theirs, so the paths past the lookup run too.

Bounded for a busy 2-core machine: a few examples per operation, derandomized
so that a failure shows again on the next run.
"""

import itertools

import pytest
import schemathesis
from django.contrib.auth.models import User
from django.core import signals
from django.db import close_old_connections
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
from symphony.tokens import token_create
from symphony.wsgi import application

schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
# The credentials are ours (below), not generated: a random bearer token only ever meets the 401.
schema.config.generation.update(with_security_parameters=False)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
    negative_data_rejection,
]
FUZZ_SETTINGS = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    # The fixture's rows are shared by an operation's examples, as a real database's are by its clients.
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
AGENTS = [agent["name"] for agent in DEMO_AGENTS]
# How the seed reaches each state: QUEUED is where a submit leaves an execution.
PATHS = {
    S.QUEUED: [],
    S.RUNNING: [S.PREPARING, S.RUNNING],
    S.COMPLETED: [S.PREPARING, S.RUNNING, S.COMPLETED],
    S.FAILED: [S.PREPARING, S.RUNNING, S.FAILED],
    S.CANCELLED: [S.CANCELLED],
}
SEEDED_IDS: list[int] = []  # the ids of the current test's executions and tasks, for the hook below
KEYS = itertools.count()


@schema.hook
def flatmap_path_parameters(context, path_parameters: dict | None) -> st.SearchStrategy:
    """A generated id is often one the seed made: the paths past the lookup run too."""
    if not path_parameters or not SEEDED_IDS:
        return st.just(path_parameters)
    return st.fixed_dictionaries(
        {
            name: st.one_of(st.just(value), st.sampled_from(SEEDED_IDS)) if type(value) is int else st.just(value)
            for name, value in path_parameters.items()
        }
    )


@schema.hook
def flatmap_body(context, body) -> st.SearchStrategy:
    """A valid agent name is often a real one, so that submits and tasks get past the agent lookup."""
    if not isinstance(body, dict) or not isinstance(body.get("agent"), str) or len(body["agent"]) > 100:
        return st.just(body)
    return st.one_of(st.just(body), st.sampled_from(AGENTS).map(lambda name: {**body, "agent": name}))


def fresh_idempotency_key(case) -> None:
    """A valid Idempotency-Key made unique per case: one reused with another body is rightly refused,
    which would stop most generated submits there (hooks do not reach the coverage phase)."""
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and 1 <= len(key) <= 150 and key.isprintable():
        case.headers["Idempotency-Key"] = f"{key}-{next(KEYS)}"


def checks_for(case) -> list:
    """All of CHECKS; a 5xx the operation documents (health's 503) is an answer, not a server error."""
    documented = case.operation.definition.raw.get("responses", {})
    if any(str(code).startswith("5") for code in documented):
        return [check for check in CHECKS if check is not not_a_server_error]
    return CHECKS


def bearer_token(user: User) -> dict:
    """An API client's credentials (``call_and_validate`` keyword arguments): a personal token."""
    _, raw = token_create(user=user, name="fuzz")
    return {"headers": {"Authorization": f"Bearer {raw}"}}


def seed(owner: User, other: User) -> list[int]:
    """Demo agents; an execution of ``owner``'s in each state and one of ``other``'s. Their ids and their tasks'."""
    agents = demo_agents_load()
    executions = []
    for number, (state, path) in enumerate(PATHS.items()):
        execution = services.execution_submit(
            agent=agents[number % len(agents)],
            input_data={"query": f"fuzz {state.lower()}"},
            tags=["fuzz", state.lower()],
            submitted_by=owner,
        )
        current = S.QUEUED
        for step in path:
            transition(execution.pk, step, expected=[current])
            current = step
        executions.append(execution)
    executions.append(services.execution_submit(agent=agents[0], input_data={"query": "not yours"}, submitted_by=other))
    return sorted({e.pk for e in executions} | {e.task_id for e in executions})


@pytest.fixture
def in_process_app():
    """The WSGI app called in the test's transaction: as Django's test client does, it must not close
    the connection at the end of each request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def credentials(db, in_process_app) -> dict:
    """A superuser's, so that every operation runs past its permission check; rows to find."""
    user = User.objects.create_superuser("fuzzer", password="fuzz-password")
    other = User.objects.create_user("other", password="other-password")
    SEEDED_IDS[:] = seed(user, other)
    yield bearer_token(user)
    SEEDED_IDS.clear()


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation(case, credentials):
    fresh_idempotency_key(case)
    case.call_and_validate(checks=checks_for(case), **credentials)
