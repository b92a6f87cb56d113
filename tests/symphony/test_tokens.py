"""Personal API tokens: create, use, expire, revoke (symphony/tokens.py)."""

import hashlib
from datetime import timedelta

import pytest

from symphony.models import ApiToken
from symphony.tokens import (
    MAX_EXPIRES_DAYS,
    TokenError,
    bearer_token,
    token_by_prefix,
    token_create,
    token_revoke,
    tokens_of,
    user_for_token,
)

pytestmark = pytest.mark.django_db


def test_a_new_token_is_shown_once_and_stored_only_as_a_hash(alice):
    token, raw = token_create(user=alice, name="ci")

    stored = ApiToken.objects.get(pk=token.pk)
    assert raw.startswith(stored.prefix + "_") and stored.prefix.startswith("sym_") and len(stored.prefix) == 12
    assert stored.secret_hash == hashlib.sha256(raw.encode()).hexdigest()
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert all(raw not in str(value) for value in row.values())
    assert (stored.name, stored.user, stored.expires_at, stored.revoked_at, stored.last_used_at) == (
        "ci", alice, None, None, None
    )  # fmt: skip


def test_two_tokens_differ_in_prefix_and_secret(alice):
    (first, raw_first), (second, raw_second) = token_create(user=alice), token_create(user=alice)
    assert first.prefix != second.prefix and raw_first != raw_second


def test_a_token_resolves_to_its_user_and_records_its_use(alice, clock):
    token, raw = token_create(user=alice)

    assert user_for_token(raw) == alice

    token.refresh_from_db()
    assert token.last_used_at == clock.now


def test_a_burst_of_uses_writes_last_used_once_a_minute(alice, clock, django_assert_num_queries):
    token, raw = token_create(user=alice)
    user_for_token(raw)
    first_use = clock.now

    clock.advance(seconds=59)
    with django_assert_num_queries(1):  # the lookup, no write
        assert user_for_token(raw) == alice
    token.refresh_from_db()
    assert token.last_used_at == first_use

    clock.advance(seconds=1)
    assert user_for_token(raw) == alice
    token.refresh_from_db()
    assert token.last_used_at == clock.now


def test_a_token_works_until_it_expires(alice, clock):
    token, raw = token_create(user=alice, expires_days=30)
    assert token.expires_at == clock.now + timedelta(days=30)

    clock.advance(days=30, seconds=-1)
    assert user_for_token(raw) == alice
    clock.advance(seconds=1)
    assert user_for_token(raw) is None
    assert ApiToken.objects.get(pk=token.pk).status() == "expired"


def test_a_revoked_token_fails_at_once(alice):
    token, raw = token_create(user=alice)
    assert user_for_token(raw) == alice

    token_revoke(token=token)

    assert user_for_token(raw) is None
    assert ApiToken.objects.get(pk=token.pk).status() == "revoked"


def test_revoking_twice_keeps_the_first_revocation(alice, clock):
    token, _ = token_create(user=alice)
    first = token_revoke(token=token).revoked_at
    clock.advance(minutes=5)
    assert token_revoke(token=ApiToken.objects.get(pk=token.pk)).revoked_at == first == clock.now - timedelta(minutes=5)


def test_revoking_one_token_leaves_the_others_working(alice):
    kept, raw_kept = token_create(user=alice)
    revoked, raw_revoked = token_create(user=alice)
    token_revoke(token=revoked)
    assert user_for_token(raw_kept) == alice and user_for_token(raw_revoked) is None


def test_an_inactive_users_tokens_fail(alice):
    _, raw = token_create(user=alice)
    alice.is_active = False
    alice.save()
    assert user_for_token(raw) is None


def test_unknown_malformed_and_altered_tokens_fail(alice):
    token, raw = token_create(user=alice)
    altered = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    foreign_secret = token.prefix + "_" + token_create(user=alice)[1].split("_", 2)[2]
    for presented in (altered, foreign_secret, "", "sym_", raw + "x", raw[:-1], " " + raw, raw.upper(), None, 42):
        assert user_for_token(presented) is None, presented
    token.refresh_from_db()
    assert token.last_used_at is None


def test_deleting_the_user_deletes_their_tokens(alice):
    token_create(user=alice)
    alice.delete()
    assert not ApiToken.objects.exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"expires_days": 0}, "between 1 and"),
        ({"expires_days": -3}, "between 1 and"),
        ({"expires_days": MAX_EXPIRES_DAYS + 1}, "between 1 and"),
        ({"expires_days": 10**30}, "between 1 and"),
        ({"expires_days": 1.5}, "whole number"),
        ({"expires_days": True}, "whole number"),
        ({"expires_days": "7"}, "whole number"),
        ({"name": "x" * 101}, "at most 100"),
        ({"name": "bad\x00name"}, "control characters"),
        ({"name": "tab\tname"}, "control characters"),
        ({"name": "\ud800"}, "control characters"),
        ({"name": 7}, "must be text"),
    ],
)
def test_bad_names_and_expiries_are_refused_and_nothing_is_written(alice, arguments, message):
    with pytest.raises(TokenError, match=message):
        token_create(user=alice, **arguments)
    assert not ApiToken.objects.exists()


def test_a_name_is_stripped_and_the_longest_expiry_is_allowed(alice, clock):
    token, _ = token_create(user=alice, name="  laptop  ", expires_days=MAX_EXPIRES_DAYS)
    assert token.name == "laptop" and token.expires_at == clock.now + timedelta(days=MAX_EXPIRES_DAYS)


def test_tokens_of_lists_only_the_users_own_newest_first(alice, bob, clock):
    older, _ = token_create(user=alice)
    clock.advance(seconds=1)
    newer, _ = token_create(user=alice)
    token_create(user=bob)
    assert list(tokens_of(alice)) == [newer, older]


def test_a_token_is_found_by_its_prefix_with_or_without_sym(alice):
    token, _ = token_create(user=alice)
    assert token_by_prefix(token.prefix) == token_by_prefix(token.prefix.removeprefix("sym_")) == token
    assert token_by_prefix("sym_00000000") is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer sym_abc", "sym_abc"),
        ("bearer   sym_abc  ", "sym_abc"),
        ("BEARER sym_abc", "sym_abc"),
        ("Basic dXNlcjpwdw==", None),
        ("Bearer", None),
        ("Bearer   ", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token_reads_the_authorization_header(header, expected):
    assert bearer_token(header) == expected
