"""The tokens page: a user's own API tokens, a form to create one (shown once), and revoking.

Each write is one call of ``symphony.tokens``; another user's token is a 404,
never a 403, so its existence is not revealed.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.staticfiles import finders
from django.http import FileResponse, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from symphony.forms import TokenCreateForm
from symphony.models import ApiToken
from symphony.tokens import TokenError, token_create, token_revoke, tokens_of


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
@never_cache  # the answer to a create holds the raw token: no cache may keep it
def token_list(request: HttpRequest) -> HttpResponse:
    form = TokenCreateForm(request.POST or None)
    created, raw, status = None, "", 200
    if request.method == "POST":
        status = 400
        if form.is_valid():
            try:
                created, raw = token_create(
                    user=request.user, name=form.cleaned_data["name"], expires_days=form.cleaned_data["expires_days"]
                )
            except TokenError as exc:
                form.add_error(None, str(exc))
            else:
                form, status = TokenCreateForm(), 201
    context = {"form": form, "tokens": tokens_of(request.user), "created": created, "raw_token": raw}
    return render(request, "symphony/tokens.html", context, status=status)


@require_POST
@login_required
def token_revoke_view(request: HttpRequest, token_id: int) -> HttpResponse:
    token = token_revoke(token=get_object_or_404(ApiToken, pk=token_id, user=request.user))
    messages.success(request, f"Token {token.prefix}… revoked: it no longer works.")
    return redirect("symphony:tokens")


@require_safe
def favicon(request: HttpRequest) -> FileResponse:
    """Browsers ask for /favicon.ico whatever the page links: answer with the SVG icon, not a 404."""
    return FileResponse(
        open(finders.find("favicon.svg"), "rb"),  # noqa: SIM115 - FileResponse closes it
        content_type="image/svg+xml",
        headers={"Cache-Control": "public, max-age=86400"},
    )
