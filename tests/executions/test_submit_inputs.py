"""Any input, through any interface: accepted and shown on its page, or refused with nothing written.

Generated values cover JSON of any shape (nesting past the limit, huge ints,
NaN and infinities, any text with NUL and lone surrogates), names, tags,
priorities, timeouts and attempts of any type and size.
"""

import io
import json
from urllib.parse import urlencode

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from executions.models import Execution, ExecutionEvent, Task
from executions.services import SubmitError, execution_submit
from tests.conftest import make_operator

pytestmark = pytest.mark.django_db

PROPERTY = settings(
    max_examples=150,
    deadline=None,
    # One logged-in client and one set of agents serve every example; each example checks its own rows.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates and NUL included
TEXT = ANY_TEXT | st.sampled_from(["", " ", "\x00", "a\x00b", "\ud800", "caf\udce9", "\ufffd", "名前", "x" * 201])
# Built in a map: Python will not print an int of more than 4300 digits, and Hypothesis prints its strategies.
HUGE_INTS = st.sampled_from([2**31, 2**63, -(2**63) - 1, 10**20, 10**400]) | st.integers(4_300, 5_000).map(
    lambda digits: 10**digits
)
NUMBERS = (
    st.integers()
    | HUGE_INTS
    | st.sampled_from([0, 1, -1, 100, 101, 3600, 3601, 1_000_000, 1_000_001, 0.05, 3600.0])
    | st.floats(allow_nan=True, allow_infinity=True)
)
SCALARS = st.none() | st.booleans() | NUMBERS | TEXT


def nested(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def json_of(scalars: st.SearchStrategy, keys: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4), max_leaves=12
    )


DEEP = st.sampled_from([62, 63, 64, 65, 1_000, 100_000]).map(nested)
JSON = json_of(SCALARS, TEXT) | DEEP | st.fixed_dictionaries({"deep": DEEP})

# Inputs the service should accept (NUL included: it is replaced), so both outcomes are well exercised.
GOOD_TEXT = st.text(max_size=12)  # any character but a surrogate
GOOD_NAME = st.text(min_size=1, max_size=200).filter(str.strip)
GOOD_JSON = json_of(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | GOOD_TEXT, GOOD_TEXT
)
GOOD_PRIORITY = st.integers(-1_000_000, 1_000_000)
GOOD_TIMEOUT = st.floats(0.001, 3600) | st.integers(1, 3600)
GOOD_ATTEMPTS = st.integers(1, 100)


def mostly(good: st.SearchStrategy, wild: st.SearchStrategy) -> st.SearchStrategy:
    """``good`` four times in five, else ``wild``."""
    return st.integers(0, 4).flatmap(lambda pick: wild if pick == 0 else good)


SUBMITS = st.fixed_dictionaries(
    {},
    optional={
        "input_data": mostly(GOOD_JSON, JSON),
        "name": mostly(GOOD_NAME, st.none() | TEXT | st.integers()),
        "tags": mostly(
            st.lists(GOOD_NAME.map(lambda tag: tag[:100]), max_size=3), st.lists(TEXT, max_size=3) | SCALARS
        ),
        "priority": mostly(GOOD_PRIORITY, NUMBERS | TEXT),
        "timeout": mostly(GOOD_TIMEOUT, NUMBERS | TEXT),
        "max_attempts": mostly(GOOD_ATTEMPTS, NUMBERS | TEXT),
        "metadata": mostly(st.dictionaries(GOOD_TEXT, GOOD_JSON, max_size=3), JSON),
        "agent": mostly(st.just("slow"), st.none()),  # None: the router chooses
    },
)


def as_typed(value) -> str:
    """A generated value as a person (or a shell) would type it."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        try:
            return json.dumps(value)  # NaN and Infinity come out as the literals json.loads reads back
        except (RecursionError, ValueError):
            depth = 1_000 if isinstance(value, list) else 100_000
            return "[" * depth + "]" * depth
    try:
        return str(value)
    except ValueError:  # an int with more digits than Python prints
        return "9" * 5_000


TYPED = {
    "input": mostly(GOOD_JSON.map(as_typed), JSON.map(as_typed) | TEXT),
    "name": mostly(GOOD_NAME.filter(lambda name: "\x00" not in name), TEXT),
    "priority": mostly(GOOD_PRIORITY.map(str), NUMBERS.map(as_typed) | TEXT),
    "timeout": mostly(GOOD_TIMEOUT.map(repr), NUMBERS.map(as_typed) | TEXT),
    "max_attempts": mostly(GOOD_ATTEMPTS.map(str), NUMBERS.map(as_typed) | TEXT),
}
FORMS = st.fixed_dictionaries(
    {"agent": mostly(st.just("slow"), st.sampled_from(["", "nobody"]))},
    optional={**TYPED, "strategy": st.sampled_from(["", "content_match", "load_balanced", "fastest"])},
)
COMMAND_LINES = st.fixed_dictionaries(
    {"agent": mostly(st.just("slow"), st.just("nobody"))},
    optional={**TYPED, "tags": mostly(st.just("sql,docs"), TEXT)},
)


@pytest.fixture
def logged_in(client, django_user_model, demo_agents):
    # An operator: she sees what the service and the CLI submit for nobody in particular.
    client.force_login(make_operator(django_user_model.objects.create_user("alice", password="pw-alice-1234")))
    return client


def rows() -> tuple[int, int, int]:
    return Task.objects.count(), Execution.objects.count(), ExecutionEvent.objects.count()


def assert_shown(client, execution_id: int) -> None:
    assert client.get(reverse("executions:detail", args=[execution_id])).status_code == 200
    assert client.get(reverse("executions:list")).status_code == 200


@PROPERTY
@given(submit=SUBMITS)
def test_the_service_accepts_and_shows_or_refuses_and_writes_nothing(logged_in, demo_agents, submit):
    before = rows()
    agent = demo_agents.get(submit.pop("agent", None))

    try:
        execution = execution_submit(agent=agent, **submit)
    except SubmitError:
        assert rows() == before
        return

    assert_shown(logged_in, execution.pk)


@PROPERTY
@given(form=FORMS)
def test_the_form_never_answers_with_a_server_error(logged_in, form):
    before = rows()
    # Encoded as a browser would, except that a lone surrogate becomes bytes that are not UTF-8.
    body = urlencode(form, encoding="utf-8", errors="surrogatepass")

    response = logged_in.post(reverse("executions:submit"), data=body, content_type="application/x-www-form-urlencoded")

    assert response.status_code in (302, 400)
    if response.status_code == 400:
        assert rows() == before
    else:
        assert_shown(logged_in, Execution.objects.latest("pk").pk)


@PROPERTY
@given(command_line=COMMAND_LINES)
def test_the_cli_submits_or_refuses_with_a_command_error(logged_in, command_line):
    before = rows()
    # "--name=value": a value that starts with "-" is still the name, not an option.
    args = [f"--{option.replace('_', '-')}={value}" for option, value in command_line.items()]

    try:
        call_command("symphony", "submit", *args, stdout=io.StringIO(), stderr=io.StringIO())
    except CommandError as refused:
        assert "\n" not in str(refused).strip()
        assert rows() == before
        return

    assert_shown(logged_in, Execution.objects.latest("pk").pk)
