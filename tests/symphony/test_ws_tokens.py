"""The websockets with an API token, through the real ASGI application (symphony/ws_auth.py).

A script sends no Origin and no cookie: its token alone lets it in. A token
that is presented but wrong, expired or revoked is refused, even when a good
session comes with it; the session path keeps its Origin check.
"""

import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from executions.models import Execution, ExecutionEvent
from executions.services import execution_cancel, execution_submit
from symphony.asgi import application
from symphony.tokens import token_create, token_revoke
from symphony.ws_auth import CLOSE_TOKEN_INVALID, TOKEN_RECHECK

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("fresh_live")]

SITE = (b"origin", b"http://127.0.0.1")
FOREIGN = (b"origin", b"http://evil.example")


@pytest.fixture
def execution(make_agent, alice) -> Execution:
    return execution_submit(agent=make_agent("echo"), input_data={"q": 1}, name="Watched", submitted_by=alice)


@pytest.fixture
def token(alice) -> tuple:
    return token_create(user=alice, name="watcher")


@pytest.fixture
def session(client, alice) -> str:
    client.force_login(alice)
    return client.cookies["sessionid"].value


def socket(path: str, *headers: tuple[bytes, bytes]) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, path, headers=list(headers))


def bearer(raw: str) -> tuple[bytes, bytes]:
    return (b"authorization", f"Bearer {raw}".encode())


def cookie(session: str) -> tuple[bytes, bytes]:
    return (b"cookie", f"sessionid={session}".encode())


async def connects(communicator: WebsocketCommunicator) -> bool:
    connected, _ = await communicator.connect()
    # Refused or not, the application ends here, so no task of it outlives the test.
    await communicator.disconnect()
    return connected


async def first_events(communicator: WebsocketCommunicator) -> list[dict]:
    message = json.loads(await communicator.receive_from(timeout=5))
    return message if isinstance(message, list) else [message]


@database_sync_to_async
def event_ids(execution_id: int) -> list[int]:
    return list(ExecutionEvent.objects.filter(execution_id=execution_id).order_by("id").values_list("id", flat=True))


@database_sync_to_async
def cancel(execution_id: int) -> None:
    execution_cancel(execution=Execution.objects.get(pk=execution_id))


@database_sync_to_async
def revoke(token) -> None:
    token_revoke(token=token)


@database_sync_to_async
def last_used_at(token):
    token.refresh_from_db()
    return token.last_used_at


async def test_a_script_watches_with_a_bearer_token_and_no_origin(execution, token):
    api_token, raw = token
    communicator = socket(f"/ws/executions/{execution.pk}/", bearer(raw))
    assert (await communicator.connect())[0]

    replayed = await first_events(communicator)
    await cancel(execution.pk)
    live_events = await first_events(communicator)

    assert (replayed[0]["kind"], replayed[0]["to_state"]) == ("state", "QUEUED")
    assert live_events[-1]["to_state"] == "CANCELLED"
    assert [event["id"] for event in replayed + live_events] == await event_ids(execution.pk)
    assert await last_used_at(api_token) is not None
    await communicator.disconnect()


async def test_a_token_in_the_query_works_and_the_rest_of_the_query_is_kept(execution, token):
    _, raw = token
    await cancel(execution.pk)
    first, second = await event_ids(execution.pk)
    communicator = socket(f"/ws/executions/{execution.pk}/?token={raw}&after={first}")
    assert (await communicator.connect())[0]

    events = await first_events(communicator)

    assert [event["id"] for event in events] == [second]
    await communicator.disconnect()


async def test_the_page_sockets_take_a_token_too(execution, token):
    _, raw = token
    assert await connects(socket("/ws/ui/executions/", bearer(raw)))
    assert await connects(socket(f"/ws/ui/executions/{execution.pk}/", bearer(raw)))


@pytest.mark.parametrize(
    "presented",
    [
        "sym_00000000_" + "A" * 43,  # well-formed, unknown
        "not-a-token",
        "",
    ],
)
async def test_a_wrong_token_is_refused_even_with_a_good_session(execution, session, presented):
    path = f"/ws/executions/{execution.pk}/"
    assert await connects(socket(path, SITE, cookie(session)))  # the session alone is let in

    assert not await connects(socket(path, SITE, cookie(session), bearer(presented)))
    assert not await connects(socket(f"{path}?token={presented}", SITE, cookie(session)))


async def test_an_altered_token_is_refused(execution, token):
    _, raw = token
    altered = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    assert not await connects(socket(f"/ws/executions/{execution.pk}/", bearer(altered)))


async def test_an_authorization_header_that_is_not_bearer_is_refused(execution, session):
    basic = (b"authorization", b"Basic YWxpY2U6cHc=")
    assert not await connects(socket(f"/ws/executions/{execution.pk}/", SITE, cookie(session), basic))


async def test_a_revoked_token_is_refused_at_once(execution, token):
    api_token, raw = token
    path = f"/ws/executions/{execution.pk}/"
    assert await connects(socket(path, bearer(raw)))

    await revoke(api_token)

    assert not await connects(socket(path, bearer(raw)))
    assert not await connects(socket(f"{path}?token={raw}"))


async def test_an_open_socket_is_closed_instead_of_pushed_to_once_its_token_is_revoked(execution, token, clock):
    api_token, raw = token
    communicator = socket(f"/ws/executions/{execution.pk}/", bearer(raw))
    assert (await communicator.connect())[0]
    await first_events(communicator)

    await revoke(api_token)
    clock.advance(seconds=TOKEN_RECHECK.total_seconds())
    await cancel(execution.pk)

    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_TOKEN_INVALID}
    await communicator.disconnect()


async def test_an_open_socket_is_closed_once_its_token_expires(execution, alice, clock):
    _, raw = await database_sync_to_async(token_create)(user=alice, expires_days=1)
    communicator = socket(f"/ws/executions/{execution.pk}/", bearer(raw))
    assert (await communicator.connect())[0]
    await first_events(communicator)

    clock.advance(days=1)
    await cancel(execution.pk)

    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_TOKEN_INVALID}
    await communicator.disconnect()


async def test_an_expired_token_is_refused(execution, alice, clock):
    _, raw = await database_sync_to_async(token_create)(user=alice, expires_days=1)
    path = f"/ws/executions/{execution.pk}/"
    assert await connects(socket(path, bearer(raw)))

    clock.advance(days=1)

    assert not await connects(socket(path, bearer(raw)))


async def test_a_token_needs_no_origin_but_a_session_still_does(execution, session, token):
    _, raw = token
    path = f"/ws/executions/{execution.pk}/"
    assert not await connects(socket(path, cookie(session)))  # no Origin: refused, as before tokens
    assert not await connects(socket(path, FOREIGN, cookie(session)))  # another site's page: refused
    # A token is not sent by a browser on its own: knowing it is the credential, whatever the Origin.
    assert await connects(socket(path, bearer(raw)))
    assert await connects(socket(path, FOREIGN, bearer(raw)))


async def test_no_token_and_no_session_is_refused(execution):
    assert not await connects(socket(f"/ws/executions/{execution.pk}/", SITE))
    assert not await connects(socket(f"/ws/executions/{execution.pk}/"))
