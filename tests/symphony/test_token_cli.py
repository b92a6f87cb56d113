"""``manage.py symphony token ...``: create (the token alone on stdout), list, revoke."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from symphony.models import ApiToken
from symphony.tokens import token_create, user_for_token

pytestmark = pytest.mark.django_db


def symphony(*args) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("symphony", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_prints_only_the_token_which_works(alice, clock):
    out, err = symphony("token", "create", "--user", "alice", "--expires", "7", "--name", "nightly")

    raw = out.strip()
    assert out == raw + "\n" and user_for_token(raw) == alice
    token = ApiToken.objects.get(user=alice)
    assert raw.startswith(token.prefix) and token.name == "nightly"
    assert token.expires_at == clock.now + timedelta(days=7)
    assert token.prefix in err and "not shown again" in err and raw not in err


def test_create_for_an_unknown_user_is_refused(alice):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        symphony("token", "create", "--user", "nobody")
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize("days", ["0", "-5", "100000"])
def test_create_with_a_bad_expiry_is_refused(alice, days):
    with pytest.raises(CommandError, match="between 1 and 3650 days"):
        symphony("token", "create", "--user", "alice", "--expires", days)
    assert not ApiToken.objects.exists()


def test_list_shows_the_users_tokens_by_prefix_and_status(alice, bob):
    active, raw = token_create(user=alice, name="active one")
    revoked, _ = token_create(user=alice, name="gone")
    symphony("token", "revoke", revoked.prefix)
    theirs, _ = token_create(user=bob)

    out, _ = symphony("token", "list", "--user", "alice")

    lines = out.splitlines()
    assert len(lines) == 2
    assert any(line.startswith(active.prefix) and "active" in line and "active one" in line for line in lines)
    assert any(line.startswith(revoked.prefix) and "revoked" in line for line in lines)
    assert theirs.prefix not in out and raw not in out


def test_list_of_a_user_without_tokens_says_so_on_stderr(alice):
    out, err = symphony("token", "list", "--user", "alice")
    assert out == "" and "no tokens" in err


def test_revoke_by_prefix_stops_the_token(alice):
    token, raw = token_create(user=alice)

    out, _ = symphony("token", "revoke", token.prefix.removeprefix("sym_"))

    assert f"{token.prefix} of alice revoked" in out
    assert user_for_token(raw) is None


def test_revoke_of_an_unknown_prefix_is_refused():
    with pytest.raises(CommandError, match="No token with prefix 'sym_zzzzzzzz'"):
        symphony("token", "revoke", "sym_zzzzzzzz")
