"""Errors of the JSON API as ``application/problem+json`` (RFC 9457).

Every refusal has a ``status``, a short ``title`` and a ``detail`` a person can
act on; validation errors add ``errors``, one per field (``loc`` is where in the
request, ``msg`` what is wrong). The apps raise their own exceptions (a submit
refused, a transition lost, a workflow action that cannot be taken); this module
is the one place that decides what each means in HTTP, so that the routers stay
a few lines each.
"""

import logging
import math
from http import HTTPStatus
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig, SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.urls import reverse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError

from executions.idempotency import IdempotencyMismatch
from executions.state import TransitionError
from executions.validation import InputRefused, SubmitError
from workflows.services import WorkflowError
from workflows.spec import SpecError

logger = logging.getLogger(__name__)

CONTENT_TYPE = "application/problem+json"
MAX_FIELD_ERRORS = 50


def problem(status: int, detail: str, *, errors: list[dict] | None = None, **extra: Any) -> JsonResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail, **extra}
    if errors is not None:
        body["errors"] = errors[:MAX_FIELD_ERRORS]
    return JsonResponse(body, status=status, content_type=CONTENT_TYPE, json_dumps_params={"ensure_ascii": False})


def _field_error(error: dict) -> dict:
    # Only what names the problem: pydantic's "input" and "ctx" can be huge or not JSON at all.
    loc: list[str] = []
    for part in map(str, error.get("loc", ())):
        if not loc or loc[-1] != part:  # ninja repeats the parameter's name: ["body", "body", "agent"]
            loc.append(part)
    return {"loc": loc, "msg": str(error.get("msg", "")), "type": str(error.get("type", ""))}


def _invalid(request: HttpRequest, exc: NinjaValidationError) -> JsonResponse:
    errors = [_field_error(error) for error in exc.errors]
    where = ", ".join(".".join(e["loc"][1:] or e["loc"]) + ": " + e["msg"] for e in errors[:3])
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return problem(422, f"The request is not valid: {where}{more}.", errors=errors)


def _http_error(request: HttpRequest, exc: HttpError) -> JsonResponse:
    if isinstance(exc, AuthenticationError):
        told = str(exc) if str(exc) != "Unauthorized" else ""
        response = problem(401, told or "Authentication needed: an API token (Authorization: Bearer ...) or a session.")
        response["WWW-Authenticate"] = 'Bearer realm="symphony"'
        return response
    if exc.status_code == 400 and exc.__cause__ is not None:  # ninja: "Cannot parse request body"
        return problem(400, _unparsable(exc.__cause__))
    response = problem(exc.status_code, str(exc))
    if isinstance(exc, Throttled) and exc.wait is not None:
        response["Retry-After"] = str(max(1, math.ceil(exc.wait)))
    return response


def _unparsable(cause: BaseException) -> str:
    if isinstance(cause, UnicodeDecodeError):
        return f"The request body is not UTF-8 ({cause.reason} at byte {cause.start})."
    if isinstance(cause, RecursionError):
        return "The request body is nested too deeply to read."
    if isinstance(cause, ValueError):
        return f"The request body is not valid JSON ({cause})."
    return "The request body cannot be read as JSON."


def _not_found(request: HttpRequest, exc: Http404) -> JsonResponse:
    return problem(404, str(exc) or "Not found.")


def _forbidden(request: HttpRequest, exc: PermissionDenied) -> JsonResponse:
    return problem(403, str(exc) or "You may not do this.")


def _submit_refused(request: HttpRequest, exc: SubmitError) -> JsonResponse:
    if isinstance(exc, InputRefused):  # one error per place in the input, from the agent's input schema
        errors = [
            {"loc": ["body", "input", *map(str, p.path)], "msg": p.message, "type": "input_schema"}
            for p in exc.problems
        ]
        return problem(422, str(exc), errors=errors)
    field = getattr(exc, "field", None)
    errors = [{"loc": ["body", field], "msg": str(exc), "type": "value_error"}] if field else None
    return problem(422, str(exc), errors=errors)


def _spec_refused(request: HttpRequest, exc: SpecError) -> JsonResponse:
    errors = [
        {"loc": ["body", *(part for part in (p.step, p.field) if part)], "msg": p.message, "type": "spec_error"}
        for p in exc.problems
    ]
    return problem(422, f"The workflow definition has {len(exc.problems)} problem(s).", errors=errors)


def _django_invalid(request: HttpRequest, exc: DjangoValidationError) -> JsonResponse:
    if hasattr(exc, "error_dict"):
        errors = [
            {"loc": ["body", field], "msg": message, "type": "value_error"}
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
        return problem(422, "; ".join(f"{e['loc'][1]}: {e['msg']}" for e in errors[:3]), errors=errors)
    return problem(422, " ".join(exc.messages))


def _conflict(request: HttpRequest, exc: Exception) -> JsonResponse:
    return problem(409, str(exc))


def _unprocessable(request: HttpRequest, exc: Exception) -> JsonResponse:
    return problem(422, str(exc))


def _too_big(request: HttpRequest, exc: RequestDataTooBig) -> JsonResponse:
    return problem(413, "The request body is too large.")


def _unreadable(request: HttpRequest, exc: Exception) -> JsonResponse:
    # A malformed multipart body or too many form fields: Django's own refusals of a request
    # it cannot read, raised wherever the body is first parsed (the CSRF check reads forms).
    return problem(400, f"The request body cannot be read: {exc}")


def _unexpected(request: HttpRequest, exc: Exception) -> JsonResponse:
    logger.exception("The API failed on %s %s", request.method, request.path, exc_info=exc)
    return problem(500, "Something went wrong on our side; the error is logged.")


def install(api: NinjaAPI) -> None:
    """Register the handlers on ``api``; the most specific class wins, as in ninja."""
    handlers = [
        (Exception, _unexpected),
        (NinjaValidationError, _invalid),
        (HttpError, _http_error),
        (Http404, _not_found),
        (PermissionDenied, _forbidden),
        (RequestDataTooBig, _too_big),
        (SuspiciousOperation, _unreadable),
        (MultiPartParserError, _unreadable),
        (DjangoValidationError, _django_invalid),
        (ValueError, _unprocessable),
        (SubmitError, _submit_refused),
        (SpecError, _spec_refused),
        (IdempotencyMismatch, _unprocessable),
        (TransitionError, _conflict),
        (WorkflowError, _conflict),
    ]
    for exception_class, handler in handlers:
        api.add_exception_handler(exception_class, handler)


JSON_TYPES = (CONTENT_TYPE, "application/json")
# Headers of a refusal that tell the client what to do next; kept when a refusal is rewritten.
KEPT_HEADERS = ("Allow", "WWW-Authenticate", "Retry-After")


class ProblemResponses:
    """Middleware: every error under the API's root is a problem, whoever answered it.

    The operations' errors go through the handlers above, but some answers are
    made outside them: ninja's own 405 for a method a path does not have, Django's
    404 for a path no route matches, a 400 for a request Django refuses before any
    view (a bad ``Host``). Those would be HTML or plain text; here they are rewritten, keeping
    the status and the headers a client acts on (``Allow``, ``WWW-Authenticate``).
    """

    def __init__(self, get_response):
        self.get_response = get_response
        self.root = ""

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code < 400 or response.get("Content-Type", "").startswith(JSON_TYPES):
            return response  # a problem already, or an operation's own documented JSON (health's 503)
        self.root = self.root or reverse("api:api-root")
        if not request.path.startswith(self.root):
            return response
        rewritten = problem(response.status_code, _default_detail(request, response))
        for header in KEPT_HEADERS:
            if header in response:
                rewritten[header] = response[header]
        return rewritten


def _default_detail(request: HttpRequest, response: HttpResponse) -> str:
    status = response.status_code
    if status == 405:
        allowed = ", ".join(sorted(m.strip() for m in response.get("Allow", "").split(",") if m.strip()))
        return f"{request.method} is not allowed on {request.path}; it allows {allowed or 'no method'}."
    if status == 404:
        return f"There is no API endpoint at {request.path}; see {reverse('api:openapi-view')}."
    if status >= 500:
        return "Something went wrong on our side; the error is logged."
    return HTTPStatus(status).description or HTTPStatus(status).phrase
