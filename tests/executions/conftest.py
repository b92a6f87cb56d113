"""Fixtures of the websocket tests: a signed-in session (``fresh_live`` is in tests/conftest.py)."""

import pytest

from tests.conftest import make_operator


@pytest.fixture
def session(client, django_user_model) -> str:
    """An operator's session: the executions these tests watch are submitted by nobody in particular."""
    client.force_login(make_operator(django_user_model.objects.create_user("alice", password="pw-alice-1234")))
    return client.cookies["sessionid"].value
