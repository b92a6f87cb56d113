"""Who a websocket connects as: a presented API token, else the browser's session.

The session path keeps its Origin check: a browser attaches the session cookie
to a connection any site's page opens, so only pages of this site may use it.
A token is not ambient (a page cannot make a browser send one it does not
know), so a token connection needs no Origin, which scripts do not send; and
a token that is presented but wrong, expired or revoked is refused outright,
never retried as the session, so a script learns at once that its token failed.
A socket already open with a token that is then revoked or expires is closed
(code 4401) instead of being sent anything further: the token is checked again
before a push, at most every ``TOKEN_RECHECK`` so a busy socket does not cost a
query per message.
"""

from datetime import timedelta
from urllib.parse import parse_qsl, urlencode

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import AllowedHostsOriginValidator
from django.utils import timezone

from symphony.tokens import bearer_token, user_for_token

TOKEN_PARAMETER = "token"
TOKEN_RECHECK = timedelta(seconds=5)
# In the 4000s, which applications may use; 4401 echoes HTTP's 401.
CLOSE_TOKEN_INVALID = 4401


def presented_token(scope) -> tuple[str | None, bytes]:
    """The token a connect carries (header first, then ``?token=``), "" for one that is unreadable, None for none;
    and the query string without the token, so consumers and logs further in never see it.
    """
    query = scope.get("query_string", b"").decode("latin-1")
    pairs = parse_qsl(query, keep_blank_values=True, encoding="latin-1")
    kept = [(name, value) for name, value in pairs if name != TOKEN_PARAMETER]
    from_query = [value for name, value in pairs if name == TOKEN_PARAMETER]
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            return bearer_token(value.decode("latin-1")) or "", urlencode(kept, encoding="latin-1").encode("latin-1")
    if from_query:
        return from_query[-1], urlencode(kept, encoding="latin-1").encode("latin-1")
    return None, scope.get("query_string", b"")


async def refuse(receive, send) -> None:
    """Close the handshake and end: unlike a consumer, no channel-layer channel for a connection refused."""
    await receive()  # websocket.connect
    await send({"type": "websocket.close"})


class TokenOrSessionAuth:
    """The websocket stack: a token connection goes straight to ``inner`` as the token's user; any other
    takes the Origin check and the session, as before tokens."""

    def __init__(self, inner):
        self.inner = inner
        self.session_stack = AllowedHostsOriginValidator(AuthMiddlewareStack(inner))

    async def __call__(self, scope, receive, send):
        raw, query_string = presented_token(scope)
        if raw is None:
            return await self.session_stack(scope, receive, send)
        user = await database_sync_to_async(user_for_token)(raw)
        if user is None:
            return await refuse(receive, send)
        scope = {**scope, "user": user, "query_string": query_string}
        return await self.inner(scope, receive, TokenGuardedSend(raw, send))


class TokenGuardedSend:
    """A token socket's ``send``: before a push, the token is checked again (at most every TOKEN_RECHECK);
    once it fails, the socket is closed and nothing more is sent on it."""

    def __init__(self, raw: str, send):
        self.raw = raw
        self.send = send
        self.checked_at = timezone.now()
        self.closed = False

    async def __call__(self, message) -> None:
        if self.closed:
            return
        if message["type"] == "websocket.send" and timezone.now() - self.checked_at >= TOKEN_RECHECK:
            self.checked_at = timezone.now()
            if await database_sync_to_async(user_for_token)(self.raw) is None:
                self.closed = True
                await self.send({"type": "websocket.close", "code": CLOSE_TOKEN_INVALID})
                return
        if message["type"] == "websocket.close":
            self.closed = True
        await self.send(message)
