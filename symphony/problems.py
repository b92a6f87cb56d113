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

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, Throttled
from ninja.errors import ValidationError as NinjaValidationError

from executions.idempotency import IdempotencyMismatch
from executions.state import TransitionError
from executions.validation import SubmitError
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
    response = problem(exc.status_code, str(exc))
    if isinstance(exc, Throttled) and exc.wait is not None:
        response["Retry-After"] = str(max(1, math.ceil(exc.wait)))
    return response


def _not_found(request: HttpRequest, exc: Http404) -> JsonResponse:
    return problem(404, str(exc) or "Not found.")


def _forbidden(request: HttpRequest, exc: PermissionDenied) -> JsonResponse:
    return problem(403, str(exc) or "You may not do this.")


def _submit_refused(request: HttpRequest, exc: SubmitError) -> JsonResponse:
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
