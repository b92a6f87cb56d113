"""The run page's websocket: it re-renders the page's partials when the run's history grows.

Every change to a run or its steps writes a ``RunEvent``; its hint (sent on
commit, or relayed from the table) reaches the group ``workflow.<run id>``. The
consumer answers a burst of hints with one render, like the execution pages,
and sends only the partials whose HTML changed, so a comment being typed in an
approval form is not wiped by a push about another step. A run the user may
not see (``access.runs_visible_to``) is refused like an unknown id.
"""

from channels.db import database_sync_to_async

from executions.consumers import HtmlLiveConsumer
from workflows import access, presenters
from workflows.live import run_group


@database_sync_to_async
def _may_see(user, run_id: int) -> bool:
    return access.may_see_run(user, run_id)


@database_sync_to_async
def _run_panels(run_id: int, user) -> dict[str, str]:
    page = presenters.run_page(run_id=run_id, user=user)
    return presenters.run_panels(page) if page is not None else {}


class WorkflowRunPageConsumer(HtmlLiveConsumer):
    """``ws/ui/workflows/runs/<id>/``: the run page's header, approvals, graph, steps, input/output and history."""

    async def prepare(self) -> bool:
        self.run_id = int(self.scope["url_route"]["kwargs"]["run_id"])
        self.live_groups = (run_group(self.run_id),)
        self.sent: dict[str, str] = {}
        return await _may_see(self.scope["user"], self.run_id)

    async def group_changed(self, message) -> None:
        await self.execution_changed(message)  # the base class's coalesced re-render

    async def render(self) -> list[str]:
        panels = await _run_panels(self.run_id, self.scope["user"])
        changed = [html for name, html in panels.items() if self.sent.get(name) != html]
        self.sent.update(panels)
        return ["".join(changed)] if changed else []
