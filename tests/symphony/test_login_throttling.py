"""Login throttling (django-axes): wrong passwords for one username from one address are refused for a while.

Driven through the site's login page and the admin's, with the WSGI-style test
client and with Django's ASGI client (the handler daphne runs).
"""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.db import connections
from django.test import AsyncClient, Client
from django.urls import reverse

pytestmark = pytest.mark.django_db(transaction=True)

PASSWORD = "pw-alice-1234"
LIMIT = 5
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password=PASSWORD, is_staff=True)


def from_address(address: str) -> Client:
    return Client(REMOTE_ADDR=address)


def log_in(client: Client, password: str, *, username: str = "alice", url: str = LOGIN):
    return client.post(url, {"username": username, "password": password, "next": "/"})


def fail(client: Client, times: int, *, username: str = "alice", url: str = LOGIN) -> list[int]:
    return [log_in(client, "wrong-password", username=username, url=url).status_code for _ in range(times)]


def is_logged_in(client: Client) -> bool:
    return client.get(reverse("executions:list")).status_code == 200


def test_wrong_passwords_below_the_limit_only_show_the_form_error():
    client = from_address("10.0.0.1")
    fail(client, LIMIT - 2)

    page = log_in(client, "wrong-password")

    assert page.status_code == 200
    assert "Please enter a correct username and password" in page.text
    assert not is_logged_in(client)


def test_the_limit_locks_the_username_from_that_address_even_with_the_right_password():
    client = from_address("10.0.0.1")

    statuses = fail(client, LIMIT)
    refused = log_in(client, PASSWORD)

    assert statuses == [200] * (LIMIT - 1) + [429]
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.text
    assert "paused for 15 minutes" in refused.text
    assert not is_logged_in(client)


def test_the_lockout_page_is_a_page_with_the_sites_look():
    client = from_address("10.0.0.1")
    fail(client, LIMIT)

    page = log_in(client, PASSWORD)

    assert page["Content-Type"].startswith("text/html")
    assert "<title>Too many failed logins · Symphony</title>" in page.text
    assert 'href="/accounts/login/"' in page.text


def test_a_success_before_the_limit_starts_the_count_over():
    client = from_address("10.0.0.1")
    fail(client, LIMIT - 1)

    assert log_in(client, PASSWORD).status_code == 302
    client.post(reverse("logout"))

    assert fail(client, LIMIT - 1) == [200] * (LIMIT - 1)
    assert log_in(client, PASSWORD).status_code == 302


def test_nobody_elsewhere_can_lock_a_user_out():
    fail(from_address("203.0.113.9"), LIMIT * 2)
    own_address = from_address("10.0.0.1")

    assert log_in(own_address, PASSWORD).status_code == 302
    assert is_logged_in(own_address)


def test_other_usernames_from_the_locked_address_are_not_refused(django_user_model):
    django_user_model.objects.create_user("bob", password="pw-bob-5678")
    client = from_address("10.0.0.1")
    fail(client, LIMIT)

    assert log_in(client, "pw-bob-5678", username="bob").status_code == 302


def test_the_lock_lifts_after_the_cool_off(settings):
    client = from_address("10.0.0.1")
    fail(client, LIMIT)
    assert log_in(client, PASSWORD).status_code == 429

    settings.AXES_COOLOFF_TIME = timedelta(0)

    assert log_in(client, PASSWORD).status_code == 302


def test_the_limit_and_cool_off_are_settings(settings):
    settings.AXES_FAILURE_LIMIT = 2
    settings.AXES_COOLOFF_TIME = timedelta(minutes=1)
    client = from_address("10.0.0.1")

    assert fail(client, 2) == [200, 429]
    assert "paused for 1 minute " in log_in(client, PASSWORD).text


def test_the_admin_login_is_throttled_too():
    client = from_address("10.0.0.1")

    statuses = fail(client, LIMIT, url=ADMIN_LOGIN)
    refused = log_in(client, PASSWORD, url=ADMIN_LOGIN)

    assert statuses == [200] * (LIMIT - 1) + [429]
    assert refused.status_code == 429
    assert 'href="/admin/login/"' in refused.text
    assert client.get("/admin/").status_code == 302  # still sent to the admin's login


def test_failures_on_either_login_page_count_together():
    client = from_address("10.0.0.1")
    fail(client, LIMIT - 1, url=ADMIN_LOGIN)

    assert fail(client, 1) == [429]


@pytest.fixture
async def asgi_client():
    yield AsyncClient()
    # The handler's thread keeps its database connection; close it so the test database can be dropped.
    await sync_to_async(connections.close_all)()


async def test_it_holds_under_the_asgi_handler(asgi_client):
    client = asgi_client

    statuses = [
        (await client.post(LOGIN, {"username": "alice", "password": "wrong-password"})).status_code
        for _ in range(LIMIT)
    ]
    refused = await client.post(LOGIN, {"username": "alice", "password": PASSWORD})

    assert statuses == [200] * (LIMIT - 1) + [429]
    assert refused.status_code == 429
    assert "Too many failed logins" in refused.text
    assert "sessionid" not in refused.cookies
