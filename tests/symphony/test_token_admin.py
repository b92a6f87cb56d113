"""The admin's API tokens: listed without their hash, revoked by an action, never added."""

import pytest
from django.urls import reverse

from symphony.tokens import token_create, user_for_token

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:symphony_apitoken_changelist")


def test_the_list_shows_tokens_but_never_their_hash(admin_client, alice):
    token, raw = token_create(user=alice, name="ci")

    page = admin_client.get(CHANGELIST).content.decode()
    detail = admin_client.get(reverse("admin:symphony_apitoken_change", args=[token.pk])).content.decode()

    assert token.prefix in page and "ci" in page and "alice" in page
    for shown in (page, detail):
        assert token.secret_hash not in shown and raw not in shown


def test_the_revoke_action_stops_the_selected_tokens(admin_client, alice):
    revoked, raw_revoked = token_create(user=alice)
    kept, raw_kept = token_create(user=alice)

    response = admin_client.post(CHANGELIST, {"action": "revoke_tokens", "_selected_action": [revoked.pk]}, follow=True)

    assert "Revoked 1 token(s)." in response.content.decode()
    assert user_for_token(raw_revoked) is None and user_for_token(raw_kept) == alice


def test_tokens_cannot_be_added_in_the_admin(admin_client):
    assert admin_client.get(reverse("admin:symphony_apitoken_add")).status_code == 403


def test_a_token_cannot_be_edited_in_the_admin(admin_client, alice, bob):
    token, raw = token_create(user=alice, name="ci")
    admin_client.post(
        reverse("admin:symphony_apitoken_change", args=[token.pk]), {"user": bob.pk, "name": "x", "revoked_at": ""}
    )
    token.refresh_from_db()
    assert (token.user, token.name) == (alice, "ci") and user_for_token(raw) == alice
