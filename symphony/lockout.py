"""The page a throttled login gets: django-axes' lockout response, as one of Symphony's pages."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse


def locked_out_page(request: HttpRequest, *_axes_arguments) -> HttpResponse:
    """429 with the login page's look; axes passes the original response and credentials, unused here.

    They arrive in a different order on the async path, so only ``request`` is read.
    """
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    context = {
        "username": request.POST.get("username", ""),
        "minutes": minutes,
        "login_url": request.path,
    }
    return TemplateResponse(request, "registration/locked_out.html", context, status=429).render()
