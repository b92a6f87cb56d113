"""The run page's websocket, through the real ASGI application: who may watch, and what a change pushes.

Runs move through the real services and the real worker loop (``drain``) in
committed transactions. Pushes reach the consumer both ways the site runs: the
web process's relay polling ``RunEvent`` (the in-memory layer), and the hint
that the writer sends on commit (a shared layer such as Redis).
"""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.test import override_settings

from executions import live
from executions.worker import drain
from symphony.asgi import application
from tests.conftest import make_operator
from workflows.live import run_group
from workflows.models import WorkflowRun
from workflows.services import workflow_run_start, workflow_step_approve

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://127.0.0.1")


@pytest.fixture(autouse=True)
def fresh_live(monkeypatch):
    """Each test's event loop gets its own channel layer and relay (both are per process otherwise)."""
    monkeypatch.setattr(live, "relay", live.EventRelay())
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def session(client, alice) -> str:
    client.force_login(make_operator(alice))
    return client.cookies["sessionid"].value


@pytest.fixture
def run(define, alice) -> WorkflowRun:
    define(
        [
            {"id": "first", "agent": "echo", "input": {"text": "{{ input.text }}"}},
            {"id": "review", "depends_on": ["first"], "approval": {"message": "Ship it?"}},
        ]
    )
    return workflow_run_start(definition="wf", input={"text": "hello"}, by=alice)


class ThreadSafeLayer:
    """The test loop's channel layer as the hint sender's thread reaches it: like Redis, from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop

    async def group_send(self, group: str, message: dict) -> None:
        asyncio.run_coroutine_threadsafe(get_channel_layer().group_send(group, message), self.loop).result(10)


@pytest.fixture(params=["relay", "hint"])
async def delivery(request, monkeypatch):
    """How the web process learns of a run's change: polling the table, or the writer's hint on commit."""
    relayed = request.param == "relay"
    if not relayed:
        loop = asyncio.get_running_loop()
        monkeypatch.setattr(live, "sender", live.HintSender(layer=lambda: ThreadSafeLayer(loop)))
    with override_settings(SYMPHONY_EVENT_RELAY=relayed):
        yield request.param


def socket(path: str, session: str | None = None) -> WebsocketCommunicator:
    headers = [ORIGIN]
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


@database_sync_to_async
def work_off() -> None:
    while drain(budget=60).ran > 0:
        pass


@database_sync_to_async
def approve(run_id: int, user) -> None:
    workflow_step_approve(run=WorkflowRun.objects.get(pk=run_id), step_id="review", by=user)


async def receive_until(communicator: WebsocketCommunicator, text: str) -> str:
    """Pushes until one holds ``text``; all of them, joined."""
    pushes = [await communicator.receive_from(timeout=10)]
    while text not in pushes[-1]:
        pushes.append(await communicator.receive_from(timeout=10))
    return "".join(pushes)


# Access ------------------------------------------------------------------------------------


async def test_anonymous_clients_are_refused(run):
    communicator = socket(f"/ws/ui/workflows/runs/{run.pk}/")
    connected, _ = await communicator.connect()
    assert not connected


async def test_unknown_runs_and_ids_no_row_can_have_are_refused(run, session):
    for run_id in (run.pk + 1000, 0, 2**63):
        communicator = socket(f"/ws/ui/workflows/runs/{run_id}/", session)
        connected, _ = await communicator.connect()
        assert not connected, run_id


# Pushes ------------------------------------------------------------------------------------


async def test_a_step_change_pushes_the_re_rendered_graph_steps_and_history(run, session, alice, delivery):
    communicator = socket(f"/ws/ui/workflows/runs/{run.pk}/", session)
    assert (await communicator.connect())[0]
    first = await communicator.receive_from(timeout=10)
    assert f'id="run-{run.pk}-node-first" class="dag-node state-running"' in first
    assert 'hx-swap-oob="true"' in first and 'data-status="RUNNING"' in first

    await work_off()
    pushed = await receive_until(communicator, 'data-status="WAITING"')

    assert f'id="run-{run.pk}-node-first" class="dag-node state-completed"' in pushed
    assert f'id="run-{run.pk}-node-review" class="dag-node state-waiting"' in pushed
    assert "step review: WAITING" in pushed and "Ship it?" in pushed

    await approve(run.pk, alice)
    ended = await receive_until(communicator, 'data-status="COMPLETED"')

    assert f'id="run-{run.pk}-node-review" class="dag-node state-completed"' in ended
    assert f'id="run-{run.pk}-decisions" class="panel decisions" hidden' in ended
    await communicator.disconnect()


async def test_a_hint_with_nothing_new_pushes_nothing(run, session):
    communicator = socket(f"/ws/ui/workflows/runs/{run.pk}/", session)
    assert (await communicator.connect())[0]
    await communicator.receive_from(timeout=10)

    # A repeated hint (a second relay, a Redis redelivery) renders the same panels: none is sent again.
    await get_channel_layer().group_send(run_group(run.pk), live.group_hint(run_group(run.pk)))

    assert await communicator.receive_nothing(0.5)
    await communicator.disconnect()
