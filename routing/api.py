"""The JSON API for agents (mounted by ``symphony.api``): thin adapters over ``routing.services``.

Every signed-in user may read the agents (they choose one when submitting);
changing them takes the model permissions the admin asks for. Agents are not
anyone's own, so a refusal is a 403, not the 404 of someone else's execution.
The routing dry run needs the executions layer's loads and history: it is in
``executions.routing_api``.
"""

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest
from ninja import Router, Status

from routing import services
from routing.models import AgentConfig
from routing.schemas import AgentIn, AgentOut, AgentPatch

router = Router(tags=["agents"])

ADD_AGENT = "routing.add_agentconfig"
CHANGE_AGENT = "routing.change_agentconfig"


def _require(request: HttpRequest, permission: str) -> None:
    if not request.user.has_perm(permission):
        raise PermissionDenied(f"Changing agents needs the {permission} permission.")


def _agent(name: str) -> AgentConfig:
    agent = AgentConfig.objects.filter(name=name).first()
    if agent is None:
        raise Http404(f"No agent called {name!r}.")
    return agent


@router.get("/agents", response=list[AgentOut], summary="List agents")
def agent_list(request: HttpRequest, enabled: bool | None = None):
    """Every agent by name; ``enabled=true`` for those the router may choose."""
    agents = AgentConfig.objects.order_by("name")
    if enabled is not None:
        agents = agents.filter(enabled=enabled)
    return [AgentOut.of(agent) for agent in agents]


@router.get("/agents/{name}", response=AgentOut, summary="Get an agent")
def agent_get(request: HttpRequest, name: str):
    return AgentOut.of(_agent(name))


@router.post("/agents", response={201: AgentOut}, summary="Create an agent")
def agent_create(request: HttpRequest, body: AgentIn):
    """Validated as the admin validates it: a name taken, bad kind settings or a key where the
    environment variable's name belongs are 422s naming the field."""
    _require(request, ADD_AGENT)
    fields = body.fields_set()
    fields["kind"] = body.kind
    return Status(201, AgentOut.of(services.agent_config_create(by=request.user, **fields)))


@router.patch("/agents/{name}", response=AgentOut, summary="Change an agent")
def agent_update(request: HttpRequest, name: str, body: AgentPatch):
    """Only the fields sent change; the result is validated whole."""
    _require(request, CHANGE_AGENT)
    return AgentOut.of(services.agent_config_update(agent=_agent(name), by=request.user, **body.fields_set()))


@router.post("/agents/{name}/enable", response=AgentOut, summary="Let the router choose an agent")
def agent_enable(request: HttpRequest, name: str):
    _require(request, CHANGE_AGENT)
    return AgentOut.of(services.agent_config_set_enabled(agent=_agent(name), enabled=True, by=request.user))


@router.post("/agents/{name}/disable", response=AgentOut, summary="Stop the router choosing an agent")
def agent_disable(request: HttpRequest, name: str):
    """Executions already queued for it still run; new submits naming it are refused and the router
    passes it over."""
    _require(request, CHANGE_AGENT)
    return AgentOut.of(services.agent_config_set_enabled(agent=_agent(name), enabled=False, by=request.user))
