"""Renders shared by the sockets that want the same HTML at about the same time."""

import asyncio
import time

import pytest

from executions import consumers
from executions.consumers import HtmlLiveConsumer
from executions.models import Execution
from executions.renders import SharedRenders
from executions.services import execution_submit
from tests.executions.test_consumers import event_ids, report_progress, socket, start_running


class Renderer:
    """Counts its renders; each waits for the test's gate."""

    def __init__(self):
        self.count = 0
        self.gate = asyncio.Event()
        self.started = asyncio.Event()

    async def __call__(self) -> str:
        self.count += 1
        self.started.set()
        await self.gate.wait()
        return f"render {self.count}"


async def test_asks_before_a_render_started_share_it_and_later_ones_do_not():
    renders, render = SharedRenders(), Renderer()
    hinted = time.monotonic()
    waiting = [asyncio.ensure_future(renders.get("page", hinted, render)) for _ in range(5)]
    await render.started.wait()  # the five asks were scheduled together, before the render began
    render.gate.set()

    assert await asyncio.gather(*waiting) == ["render 1"] * 5
    assert await renders.get("page", hinted, render) == "render 1"  # it started after that hint
    assert await renders.get("other page", hinted, render) == "render 2"
    assert await renders.get("page", time.monotonic(), render) == "render 3"  # hinted since: a new render


async def test_a_failed_render_is_not_shared_with_a_later_ask():
    renders = SharedRenders()

    async def broken():
        raise RuntimeError("template error")

    with pytest.raises(RuntimeError):
        await renders.get("page", time.monotonic(), broken)
    render = Renderer()
    render.gate.set()
    assert await renders.get("page", time.monotonic(), render) == "render 1"


@pytest.fixture
def execution(make_agent) -> Execution:
    return execution_submit(agent=make_agent("echo"), input_data={"q": 1}, name="Watched")


@pytest.mark.django_db(transaction=True)
async def test_the_sockets_on_one_page_share_its_renders(fresh_live, execution, session, monkeypatch):
    # Long enough that every socket has its hint before the first render starts, even on a busy machine.
    monkeypatch.setattr(HtmlLiveConsumer, "coalesce_seconds", 1.0)
    await start_running(execution.pk)
    shown = (await event_ids(execution.pk))[-1]
    sockets = [socket(f"/ws/ui/executions/{execution.pk}/?after={shown}", session) for _ in range(10)]
    for communicator in sockets:
        assert (await communicator.connect())[0]
        assert 'data-state="RUNNING"' in await communicator.receive_from(timeout=5)
    renders = consumers.page_renders.started

    await report_progress(execution.pk, (40, "Thinking"))
    pushes = [await communicator.receive_from(timeout=10) for communicator in sockets]

    assert "Thinking" in pushes[0] and "now at Thinking" in pushes[0]
    assert set(pushes) == {pushes[0]}
    assert consumers.page_renders.started - renders == 1
    for communicator in sockets:
        await communicator.disconnect()
