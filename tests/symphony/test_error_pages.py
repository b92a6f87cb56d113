"""What a browser asks for besides the pages: HEAD, /favicon.ico, and styled 404/403/500 pages
(with DEBUG off, as in production; the test settings run with it off)."""

import pytest
from django.core.exceptions import PermissionDenied
from django.test import RequestFactory, override_settings
from django.urls import include, path
from django.views.defaults import permission_denied, server_error

pytestmark = pytest.mark.django_db


def refuse(request):
    raise PermissionDenied


def fail(request):
    raise RuntimeError("a bug")


urlpatterns = [path("refuse/", refuse), path("fail/", fail), path("", include("symphony.urls"))]


def test_head_is_answered_where_get_is(client, alice):
    client.force_login(alice)
    for url in ("/", "/workflows/", "/tokens/", "/accounts/login/", "/favicon.ico"):
        get, head = client.get(url), client.head(url)
        assert (url, head.status_code) == (url, get.status_code) and get.status_code == 200
        assert b"".join(head) == b""


def test_favicon_ico_answers_with_the_svg_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(response.streaming_content)


def test_a_missing_page_is_the_styled_404(client, alice, settings):
    assert settings.DEBUG is False
    client.force_login(alice)

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    page = response.content.decode()
    assert "Nothing here" in page and "css/symphony.css" in page and 'class="skip-link"' in page


@override_settings(ROOT_URLCONF=__name__)
def test_a_refusal_and_a_crash_are_styled_pages(client):
    client.raise_request_exception = False

    refused, crashed = client.get("/refuse/"), client.get("/fail/")

    assert refused.status_code == 403 and "You may not do this" in refused.content.decode()
    assert crashed.status_code == 500 and "Something went wrong on our side" in crashed.content.decode()


def test_the_500_page_needs_no_request_context():
    """Django renders 500.html with an empty context: nothing in it may need a user or a request."""
    request = RequestFactory().get("/")

    page = server_error(request).content.decode()
    refused = permission_denied(request, PermissionDenied()).content.decode()

    assert "Something went wrong on our side" in page and "/static/css/symphony.css" in page
    assert "You may not do this" in refused
