"""The tokens page: create (shown once), list only one's own, revoke with a POST."""

import pytest
from django.urls import reverse

from symphony.models import ApiToken
from symphony.tokens import token_create, user_for_token

pytestmark = pytest.mark.django_db

TOKENS = reverse("symphony:tokens")


def revoke_url(token: ApiToken) -> str:
    return reverse("symphony:token-revoke", args=[token.pk])


@pytest.fixture
def as_alice(client, alice):
    client.force_login(alice)
    return client


def test_it_requires_login(client):
    response = client.get(TOKENS)
    assert response.status_code == 302 and response.url.startswith(reverse("login"))
    assert client.post(TOKENS, {"name": "x"}).status_code == 302
    assert not ApiToken.objects.exists()


def test_the_nav_links_to_the_page(as_alice):
    page = as_alice.get(reverse("executions:list")).content.decode()
    assert f'href="{TOKENS}"' in page


def test_a_created_token_is_shown_once_and_works(as_alice, alice):
    response = as_alice.post(TOKENS, {"name": "ci", "expires_days": "30"})

    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    token = ApiToken.objects.get(user=alice)
    raw = response.context["raw_token"]
    page = response.content.decode()
    assert raw in page and "will not be shown again" in page
    assert user_for_token(raw) == alice and token.name == "ci" and token.expires_at is not None

    again = as_alice.get(TOKENS).content.decode()
    assert raw not in again and token.prefix in again and "ci" in again


def test_a_token_without_expiry_never_expires(as_alice, alice):
    as_alice.post(TOKENS, {"name": "", "expires_days": ""})
    assert ApiToken.objects.get(user=alice).expires_at is None


@pytest.mark.parametrize("days", ["0", "-1", "99999", "soon"])
def test_a_bad_expiry_is_refused_naming_the_field(as_alice, days):
    response = as_alice.post(TOKENS, {"name": "x", "expires_days": days})
    assert response.status_code == 400
    assert response.context["form"].errors["expires_days"]
    assert not response.context["raw_token"]
    assert not ApiToken.objects.exists()


def test_a_name_with_control_characters_is_refused(as_alice):
    response = as_alice.post(TOKENS, {"name": "a\x01b"})
    assert response.status_code == 400 and "control characters" in response.content.decode()
    assert not ApiToken.objects.exists()


def test_the_list_shows_only_the_users_own_tokens(as_alice, alice, bob):
    mine, _ = token_create(user=alice, name="mine")
    theirs, _ = token_create(user=bob, name="theirs")

    page = as_alice.get(TOKENS).content.decode()

    assert mine.prefix in page and theirs.prefix not in page and "theirs" not in page


def test_revoke_stops_the_token_and_shows_it_revoked(as_alice, alice):
    token, raw = token_create(user=alice, name="old")

    response = as_alice.post(revoke_url(token), follow=True)

    assert user_for_token(raw) is None
    page = response.content.decode()
    assert "revoked: it no longer works" in page
    assert f'id="token-{token.pk}" class="token-revoked"' in page
    assert revoke_url(token) not in page  # no revoke button for a revoked token


def test_another_users_token_is_a_404_and_stays_valid(as_alice, bob):
    theirs, raw = token_create(user=bob)
    assert as_alice.post(revoke_url(theirs)).status_code == 404
    assert user_for_token(raw) == bob


def test_revoke_takes_only_a_post_with_a_csrf_token(client, alice):
    token, raw = token_create(user=alice)
    client.force_login(alice)
    assert client.get(revoke_url(token)).status_code == 405

    client.handler.enforce_csrf_checks = True
    assert client.post(revoke_url(token)).status_code == 403
    assert user_for_token(raw) == alice
