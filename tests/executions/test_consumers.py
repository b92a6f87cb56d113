"""The websockets, through the real ASGI application: session auth, origin check, routing.

Events are written by the real writers (services, ``transition``, the progress
tracker) in committed transactions; on the embedded default the web process's
relay notices them, exactly as it does for events written by worker processes.
"""

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from executions import consumers, live
from executions.models import EventKind, Execution, ExecutionEvent
from executions.models import ExecutionState as S
from executions.progress import ProgressTracker
from executions.services import execution_cancel, execution_submit
from executions.state import transition
from symphony.asgi import application
from tests.executions.stored_text import SHOWN_JSON_TEXT, SHOWN_TEXT, store_odd_log, store_odd_text

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_live")]

ORIGIN = (b"origin", b"http://127.0.0.1")


@pytest.fixture
def execution(make_agent) -> Execution:
    return execution_submit(agent=make_agent("echo"), input_data={"q": 1}, name="Watched")


def socket(path: str, session: str | None = None, origin=ORIGIN) -> WebsocketCommunicator:
    headers = [origin] if origin else []
    if session:
        headers.append((b"cookie", f"sessionid={session}".encode()))
    return WebsocketCommunicator(application, path, headers=headers)


async def receive_events(communicator: WebsocketCommunicator, count: int) -> list[dict]:
    events = []
    while len(events) < count:
        message = json.loads(await communicator.receive_from(timeout=5))
        events.extend(message if isinstance(message, list) else [message])
    return events


@database_sync_to_async
def event_ids(execution_id: int) -> list[int]:
    return list(ExecutionEvent.objects.filter(execution_id=execution_id).order_by("id").values_list("id", flat=True))


@database_sync_to_async
def add_log(execution_id: int, *lines: str) -> ExecutionEvent:
    return ExecutionEvent.objects.create(execution_id=execution_id, kind=EventKind.LOG, data={"lines": list(lines)})


@database_sync_to_async
def cancel(execution_id: int) -> None:
    execution_cancel(execution=Execution.objects.get(pk=execution_id))


@database_sync_to_async
def start_running(execution_id: int) -> None:
    transition(execution_id, S.PREPARING, expected=[S.QUEUED])
    transition(execution_id, S.RUNNING, expected=[S.PREPARING])


@database_sync_to_async
def report_progress(execution_id: int, *points: tuple[float, str]) -> None:
    """What a worker's tracker writes: one committed flush per point, each with a log line."""
    tracker = ProgressTracker(execution_id)
    for percent, step in points:
        tracker.report(percent, step)
        tracker.log(f"now at {step}")
        assert tracker.flush()


# Access ------------------------------------------------------------------------------------


async def test_anonymous_clients_are_refused(execution):
    for path in (f"/ws/executions/{execution.pk}/", "/ws/ui/executions/", f"/ws/ui/executions/{execution.pk}/"):
        communicator = socket(path)
        connected, _ = await communicator.connect()
        assert not connected, path


async def test_pages_of_other_sites_are_refused(execution, session):
    communicator = socket(f"/ws/executions/{execution.pk}/", session, origin=(b"origin", b"http://evil.example"))
    connected, _ = await communicator.connect()
    assert not connected


async def test_an_unknown_execution_or_a_bad_cursor_is_refused(execution, session):
    for path in ("/ws/executions/999999/", f"/ws/executions/{execution.pk}/?after=soon"):
        communicator = socket(path, session)
        connected, _ = await communicator.connect()
        assert not connected, path


async def test_ids_and_cursors_no_row_can_have_are_refused(execution, session):
    too_big = 2**63
    paths = (
        f"/ws/executions/{too_big}/",
        f"/ws/ui/executions/{too_big}/",
        "/ws/ui/executions/0/",
        f"/ws/executions/{execution.pk}/?after={too_big}",
        f"/ws/ui/executions/{execution.pk}/?after={10**30}",
        "/ws/nowhere/",
    )
    for path in paths:
        communicator = socket(path, session)
        connected, _ = await communicator.connect()
        assert not connected, path


# The JSON stream ------------------------------------------------------------------------------


async def test_without_after_it_streams_from_the_beginning(execution, session):
    await add_log(execution.pk, "one")
    communicator = socket(f"/ws/executions/{execution.pk}/", session)
    assert (await communicator.connect())[0]

    events = await receive_events(communicator, 2)

    assert [event["id"] for event in events] == await event_ids(execution.pk)
    assert (events[0]["kind"], events[0]["to_state"], events[0]["execution"]) == ("state", "QUEUED", execution.pk)
    assert events[1]["data"] == {"lines": ["one"]}
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


async def test_it_replays_only_events_after_the_given_id(execution, session):
    first = (await event_ids(execution.pk))[0]
    second = await add_log(execution.pk, "two")
    third = await add_log(execution.pk, "three")
    communicator = socket(f"/ws/executions/{execution.pk}/?after={first}", session)
    assert (await communicator.connect())[0]

    events = await receive_events(communicator, 2)

    assert [event["id"] for event in events] == [second.pk, third.pk]
    assert [event["data"]["lines"] for event in events] == [["two"], ["three"]]
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


async def test_new_events_arrive_live_once_each_in_order(execution, session):
    communicator = socket(f"/ws/executions/{execution.pk}/?after=0", session)
    assert (await communicator.connect())[0]
    replayed = await receive_events(communicator, 1)

    await cancel(execution.pk)
    live_events = await receive_events(communicator, 1)
    # A repeated hint (a second relay, a Redis redelivery) must not repeat the event.
    await get_channel_layer().group_send(
        live.execution_group(execution.pk), {"type": "execution.changed", "execution": execution.pk}
    )

    assert await communicator.receive_nothing(0.5)
    assert (live_events[0]["from_state"], live_events[0]["to_state"]) == ("QUEUED", "CANCELLED")
    assert [event["id"] for event in replayed + live_events] == await event_ids(execution.pk)
    await communicator.disconnect()


# The pages' HTML stream -------------------------------------------------------------------------


async def test_the_page_socket_pushes_the_panels_and_appends_new_log_lines(execution, session):
    await start_running(execution.pk)
    submitted, *_, shown = await event_ids(execution.pk)
    communicator = socket(f"/ws/ui/executions/{execution.pk}/?after={shown}", session)
    assert (await communicator.connect())[0]

    first = await communicator.receive_from(timeout=5)
    assert f'id="execution-{execution.pk}-progress"' in first and 'hx-swap-oob="true"' in first
    assert 'data-state="RUNNING"' in first
    assert "beforeend" not in first  # nothing newer than the page to append

    await report_progress(execution.pk, (25, "Reading"), (50, "Thinking"), (75, "Writing"))
    pushes = [await communicator.receive_from(timeout=5)]
    while "75%" not in pushes[-1]:
        pushes.append(await communicator.receive_from(timeout=5))

    # Six events (three flushes of a log and a progress event), rendered far fewer times.
    assert len(pushes) < 6, len(pushes)
    latest = pushes[-1]
    assert 'aria-valuenow="75"' in latest and "Writing" in latest
    appended = "".join(pushes)
    # Into the section of the attempt under way, which the page already has.
    assert f'hx-swap-oob="beforeend:#execution-{execution.pk}-log-attempt-{submitted}"' in appended
    for step in ("Reading", "Thinking", "Writing"):
        assert appended.count(f"now at {step}") == 1
    assert await communicator.receive_nothing(0.4)
    await communicator.disconnect()


async def receive_burst(communicator: WebsocketCommunicator) -> list[str]:
    """One push: its messages, up to a short quiet spell."""
    messages = [await communicator.receive_from(timeout=5)]
    while not await communicator.receive_nothing(0.3):
        messages.append(await communicator.receive_from(timeout=1))
    # A browser parses each message as one fragment: table rows must not share one with other elements.
    for message in messages:
        assert not ("<tr" in message and "<nav" in message), message
    return messages


async def test_the_list_socket_shows_new_executions_and_state_changes(execution, session, make_agent):
    communicator = socket("/ws/ui/executions/", session)
    assert (await communicator.connect())[0]
    first = "".join(await receive_burst(communicator))
    assert 'id="execution-rows"' in first and f'id="execution-{execution.pk}"' in first

    await cancel(execution.pk)
    update = "".join(await receive_burst(communicator))

    assert 'id="execution-rows"' not in update  # the same rows: only the changed one is sent
    assert f'<tr id="execution-{execution.pk}" class="state-cancelled" hx-swap-oob="true">' in update
    assert 'id="state-filter"' in update
    await communicator.disconnect()


async def test_the_filtered_list_socket_follows_the_filter(execution, session):
    communicator = socket("/ws/ui/executions/?state=CANCELLED", session)
    assert (await communicator.connect())[0]
    first = "".join(await receive_burst(communicator))
    assert 'id="execution-rows"' in first and f'id="execution-{execution.pk}"' not in first

    await cancel(execution.pk)
    update = "".join(await receive_burst(communicator))

    assert 'id="execution-rows"' in update and f'id="execution-{execution.pk}"' in update
    await communicator.disconnect()


async def test_the_list_socket_inserts_only_executions_matching_the_pages_filters(execution, session, make_agent):
    agent = await database_sync_to_async(make_agent)("echo", name="reports")
    submit = database_sync_to_async(execution_submit)
    matching = await submit(agent=agent, input_data={}, name="weekly report")
    communicator = socket("/ws/ui/executions/?agent=reports&q=report", session)
    assert (await communicator.connect())[0]
    first = "".join(await receive_burst(communicator))
    assert f'id="execution-{matching.pk}"' in first and f'id="execution-{execution.pk}"' not in first
    assert '<span class="count">1</span> matching' in first

    other_agent = await submit(agent=execution.agent, input_data={}, name="weekly report")
    other_text = await submit(agent=agent, input_data={}, name="weekly digest")
    update = "".join(await receive_burst(communicator))

    assert 'id="execution-rows"' not in update  # the page's rows did not change
    assert f"execution-{other_agent.pk}" not in update and f"execution-{other_text.pk}" not in update
    assert '<span class="count">1</span> matching' in update

    wanted = await submit(agent=agent, input_data={"note": "the report, again"}, name="again")
    update = "".join(await receive_burst(communicator))

    assert 'id="execution-rows"' in update and f'id="execution-{wanted.pk}"' in update
    assert f"execution-{other_text.pk}" not in update
    assert '<span class="count">2</span> matching' in update
    await communicator.disconnect()


async def test_an_older_page_socket_keeps_its_page(execution, session):
    communicator = socket(f"/ws/ui/executions/?before={execution.pk + 1}", session)
    assert (await communicator.connect())[0]
    first = "".join(await receive_burst(communicator))
    assert f'id="execution-{execution.pk}"' in first

    newer = await database_sync_to_async(execution_submit)(agent=execution.agent, input_data={}, name="newer")
    await cancel(execution.pk)
    update = "".join(await receive_burst(communicator))

    assert f"execution-{newer.pk}" not in update
    assert f'<tr id="execution-{execution.pk}" class="state-cancelled" hx-swap-oob="true">' in update
    await communicator.disconnect()


async def test_a_list_socket_with_an_unknown_state_is_refused(session):
    communicator = socket("/ws/ui/executions/?state=LOST", session)
    assert not (await communicator.connect())[0]


# Each user's own -------------------------------------------------------------------------------


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob")


@pytest.fixture
def bob_session(bob) -> str:
    """A plain user's session (not an operator): he sees what he submitted."""
    client = Client()
    client.force_login(bob)
    return client.cookies["sessionid"].value


async def test_a_plain_user_cannot_watch_someone_elses_execution(execution, bob_session):
    for path in (f"/ws/executions/{execution.pk}/", f"/ws/ui/executions/{execution.pk}/"):
        communicator = socket(path, bob_session)
        connected, _ = await communicator.connect()
        assert not connected, path


async def test_a_plain_users_list_shows_and_follows_only_their_executions(execution, bob, bob_session, make_agent):
    sockets = [socket("/ws/ui/executions/", bob_session) for _ in range(5)]
    for communicator in sockets:
        assert (await communicator.connect())[0]
        first = "".join(await receive_burst(communicator))
        assert 'id="execution-rows"' in first and f'id="execution-{execution.pk}"' not in first

    await cancel(execution.pk)  # someone else's: nothing to show, nothing rendered
    for communicator in sockets:
        assert await communicator.receive_nothing(0.3)
    mine = await database_sync_to_async(execution_submit)(
        agent=await database_sync_to_async(make_agent)("echo", name="bobs"), input_data={}, submitted_by=bob
    )

    for communicator in sockets:
        update = "".join(await receive_burst(communicator))
        assert f'id="execution-{mine.pk}"' in update and f'id="execution-{execution.pk}"' not in update
        await communicator.disconnect()
    # Whose each execution is was read once for all five sockets, not once per socket and hint.
    assert consumers.submitters.reads <= 2


async def test_whose_execution_it_is_is_read_once_however_many_ask(execution, bob, make_agent):
    submitters = consumers.Submitters()
    agent = await database_sync_to_async(make_agent)("echo", name="bobs")
    mine = await database_sync_to_async(execution_submit)(agent=agent, input_data={}, submitted_by=bob)

    asked = [execution.pk, mine.pk, 424242] * 4
    owners = await asyncio.gather(*(submitters.of(execution_id) for execution_id in asked))

    assert owners == [None, bob.pk, None] * 4 and submitters.reads == 1
    assert await submitters.of(mine.pk) == bob.pk and submitters.reads == 1  # remembered
    assert await submitters.of(424242) is None and submitters.reads == 2  # no row: asked again


# Whatever is stored ---------------------------------------------------------------------------


async def test_every_socket_pushes_whatever_text_is_stored(execution, session):
    stored = await database_sync_to_async(store_odd_text)(execution)
    on_sqlite = connection.vendor == "sqlite"
    assert all(stored) if on_sqlite else not any(stored)

    events = socket(f"/ws/executions/{execution.pk}/", session)
    page = socket(f"/ws/ui/executions/{execution.pk}/", session)
    listed = socket("/ws/ui/executions/", session)
    for communicator in (events, page, listed):
        assert (await communicator.connect())[0]

    sent = await receive_events(events, len(await event_ids(execution.pk)))
    html = [await page.receive_from(timeout=5), *await receive_burst(listed)]
    assert await database_sync_to_async(store_odd_log)(execution) == on_sqlite
    await get_channel_layer().group_send(
        live.execution_group(execution.pk), {"type": "execution.changed", "execution": execution.pk}
    )
    html.append(await page.receive_from(timeout=5))

    for text in html:
        text.encode("utf-8")  # what the server does with every frame: a lone surrogate would close it with 1011
    if on_sqlite:
        assert json.dumps(sent).count(json.dumps(SHOWN_JSON_TEXT)[1:-1]) >= 3  # log, output, history event
        assert "\\ud800" not in json.dumps(sent)
        assert SHOWN_JSON_TEXT in html[0] and SHOWN_TEXT in "".join(html[1:-1])
        assert SHOWN_JSON_TEXT in html[-1]  # the live push, with the log line added after connecting
    for communicator in (events, page, listed):
        await communicator.disconnect()


@database_sync_to_async
def requeue(execution_id: int) -> int:
    """The worker lost: the run goes back to the queue as attempt 2 and starts again; the id of the requeue."""
    from executions.services import execution_requeue

    execution_requeue(execution_id=execution_id, from_state=S.RUNNING, attempt=1, reason="worker lost")
    start = ExecutionEvent.objects.filter(execution_id=execution_id, to_state=S.QUEUED).order_by("-id")[0].pk
    transition(execution_id, S.PREPARING, expected=[S.QUEUED])
    return start


async def test_the_page_socket_adds_new_attempts_and_their_log_live(execution, session):
    await start_running(execution.pk)
    submitted, *_, shown = await event_ids(execution.pk)
    communicator = socket(f"/ws/ui/executions/{execution.pk}/?after={shown}", session)
    assert (await communicator.connect())[0]
    await communicator.receive_from(timeout=5)

    await add_log(execution.pk, "late line of attempt one")
    second = await requeue(execution.pk)
    await add_log(execution.pk, "first line of attempt two")
    pushes = [await communicator.receive_from(timeout=5)]
    while "first line of attempt two" not in pushes[-1]:
        pushes.append(await communicator.receive_from(timeout=5))

    pushed = "".join(pushes)
    # The line of attempt 1 joins its section; attempt 2 arrives as a section of its own, with its line.
    old_section = f'hx-swap-oob="beforeend:#execution-{execution.pk}-log-attempt-{submitted}"'
    assert pushed.count(old_section) == 1
    assert pushed.split(old_section)[1].split("</div></div>")[0].count("late line of attempt one") == 1
    log = f"execution-{execution.pk}-log"
    new_section = f'<div hx-swap-oob="beforeend:#{log}"><section id="{log}-attempt-{second}"'
    assert pushed.count(new_section) == 1
    assert "first line of attempt two" in pushed.split(new_section)[1].split("</section>")[0]
    latest_attempts = pushes[-1].split(f'id="execution-{execution.pk}-attempts"')[1].split("</section>")[0]
    assert f'<tr id="attempt-{second}" class="open">' in latest_attempts and "requeued" in latest_attempts
    for line in ("late line of attempt one", "first line of attempt two"):
        assert pushed.count(line) == 1
    await communicator.disconnect()


def test_a_page_push_reads_the_same_queries_however_many_events_it_brings(execution):
    def logs(count: int) -> None:
        ExecutionEvent.objects.bulk_create(
            ExecutionEvent(execution_id=execution.pk, kind=EventKind.LOG, data={"lines": [f"line {n}"]})
            for n in range(count)
        )

    def push_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            html, cursor = consumers._detail_push.func(execution.pk, 0)
        assert cursor == ExecutionEvent.objects.filter(execution_id=execution.pk).order_by("-id")[0].pk
        assert html.count('class="log-line"') == ExecutionEvent.objects.filter(kind=EventKind.LOG).count()
        return len(queries)

    logs(3)
    few = push_queries()
    logs(400)

    assert push_queries() == few
