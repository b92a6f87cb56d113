"""Who may do what, on every route: anonymous, owner, another user, an operator and plain staff.

The routes come from the URL conf (pages and the JSON API under ``api/v1/``) and
from ``symphony.asgi.websocket_urlpatterns``; ``ROUTES`` says for each what it
is (``OWNED``: someone's execution, task or run; ``LISTED``: a list of what the
user may see; ``SIGNED_IN``; ``PUBLIC``; ``MANAGED``: needs model permissions),
and ``expected`` turns that into each role's answer. A route the table does not
cover fails ``test_every_route_is_in_the_table``: adding a route means adding
its line here. The admin's routes are generated from its registry and checked
in ``test_admin_access.py``.

Every action (a non-GET route) names what it changes (``changes``); the test
asserts it changed exactly when the role was allowed, so a refusal that still
wrote something, or a 200 that did nothing, fails.
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from executions.models import Execution, Task
from executions.models import ExecutionState as S
from executions.services import execution_submit
from executions.state import transition
from routing.models import AgentConfig, RoutingCorrection
from symphony.asgi import application, websocket_urlpatterns
from symphony.models import ApiToken
from symphony.tokens import token_create
from tests.conftest import make_operator
from workflows.models import StepRun, WorkflowRun, WorkflowStatus, WorkflowVersion
from workflows.services import workflow_definition_save, workflow_run_pause, workflow_run_start, workflow_step_reject

ROLES = ("anonymous", "owner", "other", "operator", "staff")

OWNED = "owned"  # one user's execution, task or run: its owner and operators
LISTED = "listed"  # a list: every signed-in user, each seeing what is theirs (operators: all)
SIGNED_IN = "signed in"  # any signed-in user, acting for themselves
PUBLIC = "public"
MANAGED = "managed"  # agents and definitions: those with the model permissions (none of ROLES)
PERSONAL = "personal"  # the owner's own things (API tokens): nobody else, operators included
REFUSED = "refused"  # nobody (the websockets' catch-all)
OPERATORS = "operators"  # the system pages (everyone's work): operators only, a 403 for anyone else signed in
CORRECTS = "corrects"  # a routed run: found by its owner and operators, corrected by operators only (owner: 403)
METRICS = "metrics"  # aggregates only: operators and staff (session or token); a 401 without credentials

# Routes that another test covers, by path prefix.
ELSEWHERE = {"admin/": "tests/symphony/test_admin_access.py"}


@dataclass
class World:
    """One of everything, owned by ``owner``: what the routes act on."""

    users: dict[str, Any]
    queued: Execution
    failed: Execution
    completed: Execution
    routed: Execution  # the router chose its agent (echo): it may be corrected to echo-too
    waiting: WorkflowRun  # waiting for its approval step
    paused: WorkflowRun
    rejected: WorkflowRun  # ended FAILED: may be re-run
    token: ApiToken

    def row(self, route: "Route") -> dict:
        return route.kwargs(self) if route.kwargs else {}


@dataclass(frozen=True)
class Route:
    access: str
    method: str = "GET"
    kwargs: Callable[[World], dict] | None = None
    data: dict | None = None
    ok: int = 200
    changes: Callable[[World], Any] | None = None  # a snapshot of what the action changes
    shows: Callable[[World], str] | None = None  # LISTED: what marks the owner's item in the answer
    extra: dict = field(default_factory=dict)


def execution(name: str) -> Callable[[World], dict]:
    return lambda w: {"execution_id": getattr(w, name).pk}


def run(name: str, **more) -> Callable[[World], dict]:
    return lambda w: {"run_id": getattr(w, name).pk, **more}


def state_of(name: str) -> Callable[[World], Any]:
    return lambda w: Execution.objects.values_list("state", flat=True).get(pk=getattr(w, name).pk)


def status_of(name: str) -> Callable[[World], Any]:
    return lambda w: WorkflowRun.objects.values_list("status", flat=True).get(pk=getattr(w, name).pk)


def step_of(name: str, step_id: str) -> Callable[[World], Any]:
    return lambda w: StepRun.objects.filter(run=getattr(w, name), step_id=step_id, superseded=False).get().state


def field_of(model, field_name: str, **lookup) -> Callable[[World], Any]:
    return lambda w: model.objects.values_list(field_name, flat=True).get(**lookup)


def count(model) -> Callable[[World], Any]:
    return lambda w: model.objects.count()


def html_row(prefix: str, name: str) -> Callable[[World], str]:
    return lambda w: f'id="{prefix}-{getattr(w, name).pk}"'


def json_id(name: str) -> Callable[[World], str]:
    return lambda w: f'"id": {getattr(w, name).pk},'


def json_task(name: str) -> Callable[[World], str]:
    return lambda w: f'"id": {getattr(w, name).task_id},'


SUBMIT_FORM = {"agent": "echo", "input": "{}", "priority": "0"}
# Pages (by URL name, or pattern when unnamed), the API (namespace "api"), websockets (by pattern).
ROUTES: dict[str, Route] = {
    "login": Route(PUBLIC),
    "favicon.ico": Route(PUBLIC),
    "logout": Route(PUBLIC, "POST", ok=302),
    "executions/": Route(PUBLIC, ok=302),  # the old list address, redirected
    "executions:list": Route(LISTED, shows=html_row("execution", "queued")),
    "executions:submit": Route(SIGNED_IN, "POST", data=SUBMIT_FORM, ok=302, changes=count(Execution)),
    "executions:detail": Route(OWNED, kwargs=execution("queued")),
    "executions:cancel": Route(OWNED, "POST", execution("queued"), ok=302, changes=state_of("queued")),
    "executions:retry": Route(OWNED, "POST", execution("failed"), ok=302, changes=state_of("failed")),
    "executions:rerun": Route(
        OWNED, "POST", execution("completed"), data={"input": '{"edited": true}'}, ok=302, changes=count(Execution)
    ),
    "executions:correct-routing": Route(
        CORRECTS, "POST", execution("routed"), data={"agent": "echo-too"}, ok=302, changes=count(RoutingCorrection)
    ),  # fmt: skip
    "executions:overview": Route(OPERATORS),
    "executions:agents": Route(OPERATORS),
    "executions:agent": Route(OPERATORS, kwargs=lambda w: {"agent_id": AgentConfig.objects.get(name="echo").pk}),
    "executions:workers": Route(OPERATORS),
    "executions:routing-evaluate": Route(OPERATORS),
    "executions:agent-enabled": Route(
        MANAGED,
        "POST",
        lambda w: {"agent_id": AgentConfig.objects.get(name="echo").pk},
        data={"enabled": "0"},
        ok=302,
        changes=field_of(AgentConfig, "enabled", name="echo"),
    ),  # fmt: skip
    "metrics": Route(METRICS),
    "workflows:list": Route(LISTED, shows=html_row("run", "waiting")),
    "workflows:start": Route(
        SIGNED_IN, "POST", data={"definition": "flow", "input": "{}"}, ok=302, changes=count(WorkflowRun)
    ),  # fmt: skip
    "workflows:run": Route(OWNED, kwargs=run("waiting")),
    "workflows:pause": Route(OWNED, "POST", run("waiting"), ok=302, changes=status_of("waiting")),
    "workflows:resume": Route(OWNED, "POST", run("paused"), ok=302, changes=status_of("paused")),
    "workflows:cancel": Route(OWNED, "POST", run("waiting"), ok=302, changes=status_of("waiting")),
    "workflows:rerun": Route(
        OWNED, "POST", run("rejected"), data={"from_step": "review"}, ok=302, changes=status_of("rejected")
    ),  # fmt: skip
    "workflows:approve": Route(
        OWNED, "POST", run("waiting", step_id="review"), ok=302, changes=step_of("waiting", "review")
    ),  # fmt: skip
    "workflows:reject": Route(
        OWNED, "POST", run("waiting", step_id="review"), ok=302, changes=step_of("waiting", "review")
    ),  # fmt: skip
    "api:api-root": Route(PUBLIC, ok=404),  # ninja's placeholder: nothing there
    "api:openapi-json": Route(PUBLIC),
    "api:openapi-view": Route(PUBLIC),
    "api:execution_submit": Route(
        SIGNED_IN, "POST", data={"agent": "echo", "input": {}}, ok=201, changes=count(Execution)
    ),  # fmt: skip
    "api:execution_list": Route(LISTED, shows=json_id("queued")),
    "api:execution_get": Route(OWNED, kwargs=execution("queued")),
    "api:execution_events": Route(OWNED, kwargs=execution("queued")),
    "api:execution_cancel": Route(OWNED, "POST", execution("queued"), changes=state_of("queued")),
    "api:execution_retry": Route(OWNED, "POST", execution("failed"), changes=state_of("failed")),
    "api:execution_rerun": Route(OWNED, "POST", execution("completed"), ok=201, changes=count(Execution)),
    "api:task_create": Route(SIGNED_IN, "POST", data={"name": "t", "input": {}}, ok=201, changes=count(Task)),
    "api:task_list": Route(LISTED, shows=json_task("queued")),
    "api:task_get": Route(OWNED, kwargs=lambda w: {"task_id": w.queued.task_id}),
    "api:agent_list": Route(SIGNED_IN),
    "api:agent_get": Route(SIGNED_IN, kwargs=lambda w: {"name": "echo"}),
    "api:agent_create": Route(
        MANAGED,
        "POST",
        data={"name": "new", "settings": {"path": "tests.agents.echo"}},
        ok=201,
        changes=count(AgentConfig),
    ),  # fmt: skip
    "api:agent_update": Route(
        MANAGED,
        "PATCH",
        lambda w: {"name": "echo"},
        data={"max_concurrency": 2},
        changes=field_of(AgentConfig, "max_concurrency", name="echo"),
    ),  # fmt: skip
    "api:agent_disable": Route(
        MANAGED, "POST", lambda w: {"name": "echo"}, changes=field_of(AgentConfig, "enabled", name="echo")
    ),  # fmt: skip
    "api:agent_enable": Route(
        MANAGED, "POST", lambda w: {"name": "off"}, changes=field_of(AgentConfig, "enabled", name="off")
    ),  # fmt: skip
    "api:routing_decide": Route(SIGNED_IN, "POST", data={"query": "echo this"}),  # a dry run: changes nothing
    "api:execution_correct_routing": Route(
        CORRECTS, "POST", execution("routed"), data={"agent": "echo-too"}, ok=201, changes=count(RoutingCorrection)
    ),  # fmt: skip
    "api:health": Route(PUBLIC, ok=503),  # no worker or dispatcher runs in this test: 503 saying so
    "api:workflow_definition_list": Route(SIGNED_IN),
    "api:workflow_definition_get": Route(SIGNED_IN, kwargs=lambda w: {"name": "flow"}),
    "api:workflow_definition_save": Route(
        MANAGED,
        "POST",
        data={"source": {"name": "flow2", "steps": [{"id": "a", "approval": {}}]}},
        ok=201,
        changes=count(WorkflowVersion),
    ),  # fmt: skip
    "api:workflow_run_list": Route(LISTED, shows=json_id("waiting")),
    "api:workflow_run_get": Route(OWNED, kwargs=run("waiting")),
    "api:workflow_run_start": Route(
        SIGNED_IN, "POST", data={"definition": "flow", "input": {}}, ok=201, changes=count(WorkflowRun)
    ),  # fmt: skip
    "api:workflow_run_pause": Route(OWNED, "POST", run("waiting"), changes=status_of("waiting")),
    "api:workflow_run_resume": Route(OWNED, "POST", run("paused"), changes=status_of("paused")),
    "api:workflow_run_cancel": Route(OWNED, "POST", run("waiting"), changes=status_of("waiting")),
    "api:workflow_run_rerun": Route(
        OWNED, "POST", run("rejected"), data={"from_step": "review"}, changes=status_of("rejected")
    ),  # fmt: skip
    "api:workflow_step_approve": Route(
        OWNED, "POST", run("waiting", step_id="review"), changes=step_of("waiting", "review")
    ),  # fmt: skip
    "api:workflow_step_reject": Route(
        OWNED, "POST", run("waiting", step_id="review"), changes=step_of("waiting", "review")
    ),  # fmt: skip
    "symphony:tokens": Route(SIGNED_IN),
    "symphony:token-revoke": Route(
        PERSONAL,
        "POST",
        lambda w: {"token_id": w.token.pk},
        ok=302,
        changes=lambda w: ApiToken.objects.values_list("revoked_at", flat=True).get(pk=w.token.pk),
    ),  # fmt: skip
    "ws/executions/<row_id:execution_id>/": Route(OWNED, kwargs=execution("queued")),
    "ws/ui/executions/": Route(LISTED, shows=html_row("execution", "queued")),
    "ws/ui/executions/<row_id:execution_id>/": Route(OWNED, kwargs=execution("queued")),
    "ws/ui/workflows/runs/<row_id:run_id>/": Route(OWNED, kwargs=run("waiting")),
    "^": Route(REFUSED),  # any other websocket path
}


# What each role gets ---------------------------------------------------------------------------


def expected(route: Route, interface: str, role: str) -> str:
    """``ok`` (and for a list: ``ok, shown`` or ``ok, hidden``), ``login``, ``401``, ``403``, ``404``, ``refused``."""
    if route.access == PUBLIC:
        return "ok"
    if route.access == REFUSED:
        return "refused"
    if route.access == METRICS:
        return {"anonymous": "401", "operator": "ok", "staff": "ok"}.get(role, "403")
    if role == "anonymous":
        return {"page": "login", "api": "401", "ws": "refused"}[interface]
    if route.access == MANAGED:
        return "403"
    if route.access == OPERATORS:
        return "ok" if role == "operator" else "403"
    if route.access == CORRECTS and role in ("owner", "operator"):
        return "ok" if role == "operator" else "403"
    if route.access == PERSONAL:
        return "ok" if role == "owner" else ("refused" if interface == "ws" else "404")
    if route.access == SIGNED_IN:
        return "ok"
    sees = role in ("owner", "operator")
    if route.access == LISTED:
        return "ok, shown" if sees else "ok, hidden"
    if sees:
        return "ok"
    return "refused" if interface == "ws" else "404"


def interface_of(key: str) -> str:
    if key.startswith("api:"):
        return "api"
    if key.startswith("ws/") or key == "^":
        return "ws"
    return "page"


# The routes that exist -------------------------------------------------------------------------


def _http_routes(patterns, prefix: str = "", namespace: str = ""):
    for pattern in patterns:
        path = prefix + str(pattern.pattern)
        if any(path.startswith(covered) for covered in ELSEWHERE):
            continue
        if isinstance(pattern, URLResolver):
            inner = ":".join(part for part in (namespace, pattern.namespace or "") if part)
            yield from _http_routes(pattern.url_patterns, path, inner)
        elif isinstance(pattern, URLPattern):
            yield f"{namespace}:{pattern.name}".lstrip(":") if pattern.name else path


def existing_routes() -> set[str]:
    return set(_http_routes(get_resolver().url_patterns)) | {str(route.pattern) for route in websocket_urlpatterns}


def test_every_route_is_in_the_table():
    routes = existing_routes()
    assert not routes - ROUTES.keys(), "Routes missing from ROUTES: say who may use them"
    assert not ROUTES.keys() - routes, "ROUTES names routes that do not exist"


# Actions that change nothing by design.
CHANGE_NOTHING = {"logout", "api:routing_decide"}


def test_every_action_says_what_it_changes():
    actions = [key for key, route in ROUTES.items() if route.method != "GET" and key not in CHANGE_NOTHING]
    assert actions and all(ROUTES[key].changes for key in actions)


# The world ------------------------------------------------------------------------------------


def _ended(execution_: Execution, state: str) -> Execution:
    transition(execution_.pk, S.PREPARING, expected=[S.QUEUED])
    transition(execution_.pk, S.RUNNING, expected=[S.PREPARING])
    transition(execution_.pk, state, expected=[S.RUNNING])
    execution_.refresh_from_db()
    return execution_


@pytest.fixture
def world(django_user_model, make_agent) -> World:
    make = django_user_model.objects.create_user
    users = {
        "anonymous": None,
        "owner": make("owner"),
        "other": make("other"),
        "operator": make_operator(make("operator")),
        "staff": make("staff", is_staff=True),
    }
    owner = users["owner"]
    agent = make_agent("echo")
    make_agent("echo", name="off", enabled=False)
    workflow_definition_save(
        source={"name": "flow", "steps": [{"id": "review", "approval": {"message": "ok?"}}]}, by=owner
    )

    def submit() -> Execution:
        return execution_submit(agent=agent, input_data={"q": 1}, submitted_by=owner)

    rejected = workflow_run_start(definition="flow", by=owner)
    # Routed while echo is the only enabled agent; echo-too comes after, to be the correction.
    routed = execution_submit(input_data={"query": "echo this"}, submitted_by=owner, strategy="round_robin")
    make_agent("echo", name="echo-too")
    return World(
        users=users,
        queued=submit(),
        failed=_ended(submit(), S.FAILED),
        completed=_ended(submit(), S.COMPLETED),
        routed=routed,
        waiting=workflow_run_start(definition="flow", by=owner),
        paused=workflow_run_pause(run=workflow_run_start(definition="flow", by=owner), by=owner),
        rejected=workflow_step_reject(run=rejected, step_id="review", by=owner),
        token=token_create(user=owner, name="ci")[0],
    )


def test_the_world_is_as_the_routes_need_it(world):
    assert (world.waiting.status, world.paused.status) == (WorkflowStatus.WAITING, WorkflowStatus.PAUSED)
    assert (world.failed.state, world.rejected.status) == (S.FAILED, WorkflowStatus.FAILED)


# HTTP: pages and the API ---------------------------------------------------------------------


def _url(key: str, world: World) -> str:
    route = ROUTES[key]
    if ":" in key or key in ("login", "logout"):
        return reverse(key, kwargs=world.row(route))
    return "/" + key


def _request(client, key: str, world: World):
    route, interface = ROUTES[key], interface_of(key)
    url = _url(key, world)
    if route.method == "GET":
        return client.get(url)
    if interface == "api":
        body = json.dumps(route.data) if route.data is not None else ""
        return client.generic(route.method, url, body, content_type="application/json")
    return client.generic(route.method, url, urlencode(route.data or {}), content_type=FORM)


def _outcome(response, route: Route, interface: str, world: World) -> str:
    status = response.status_code
    if interface == "page" and status == 302 and response["Location"].startswith(reverse("login") + "?next="):
        return "login"
    if status == route.ok:
        if route.access != LISTED:
            return "ok"
        return "ok, shown" if route.shows(world) in response.content.decode() else "ok, hidden"
    if interface == "api" and status in (401, 403, 404):
        assert response["Content-Type"].startswith("application/problem+json"), response.content
    return str(status)


FORM = "application/x-www-form-urlencoded"
HTTP_CASES = [(key, role) for key in ROUTES if interface_of(key) != "ws" for role in ROLES]


@pytest.mark.django_db
@pytest.mark.parametrize(("key", "role"), HTTP_CASES)
def test_http_route(client, world, key, role):
    route, interface = ROUTES[key], interface_of(key)
    if world.users[role] is not None:
        client.force_login(world.users[role])
    before = route.changes(world) if route.changes else None

    response = _request(client, key, world)

    want = expected(route, interface, role)
    assert _outcome(response, route, interface, world) == want, response.content[:500]
    if route.changes:
        changed = route.changes(world) != before
        assert changed == want.startswith("ok"), "the action's effect does not match its answer"


# Websockets -----------------------------------------------------------------------------------


def _ws_path(key: str, world: World) -> str:
    if key == "^":
        return "/ws/nowhere/"
    kwargs = world.row(ROUTES[key])
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(kwargs[m.group(1)]), key)


WS_CASES = [(key, role) for key in ROUTES if interface_of(key) == "ws" for role in ROLES]


@pytest.fixture
def signed_in(client, world):
    def cookie(role: str) -> list[tuple[bytes, bytes]]:
        if world.users[role] is None:
            return []
        client.force_login(world.users[role])
        return [(b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())]

    return cookie


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("fresh_live")
@pytest.mark.parametrize(("key", "role"), WS_CASES)
async def test_websocket_route(world, signed_in, key, role):
    route = ROUTES[key]
    headers = [(b"origin", b"http://127.0.0.1"), *await database_sync_to_async(signed_in)(role)]
    communicator = WebsocketCommunicator(application, _ws_path(key, world), headers=headers)
    connected, _ = await communicator.connect()
    try:
        outcome = "ok" if connected else "refused"
        if connected and route.access == LISTED:
            shown = route.shows(world)
            pushed = [await communicator.receive_from(timeout=5) for _ in range(2)]  # the counts, then the rows
            outcome = "ok, shown" if any(shown in html for html in pushed) else "ok, hidden"
        assert outcome == expected(route, "ws", role)
    finally:
        await communicator.disconnect()


PAGE_READS = [key for key, route in ROUTES.items() if interface_of(key) == "page" and route.method == "GET"]


@pytest.mark.django_db
@pytest.mark.parametrize("key", PAGE_READS)
def test_head_is_answered_as_get(client, world, key):
    """``require_safe``, not ``require_GET``: HEAD (monitors, link checkers, curl -I) is never a 405."""
    client.force_login(world.users["owner"])
    url = _url(key, world)

    assert client.head(url).status_code == client.get(url).status_code
