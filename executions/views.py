"""The executions pages: list with submit form, detail, the cancel/retry buttons and the routing correction.

Each view loads what it needs through ``selectors`` (shaped by ``presenters``),
narrowed by ``access`` to what the user may see (someone else's execution is a
404, like a missing one), and writes only through ``services``; the live fragments are the same partials
the websocket pushes, rendered by ``presenters.render_text`` so that whatever a
row holds, the page renders.
"""

import json
from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from executions import access, list_page, presenters, routing_corrections, selectors, services
from executions.forms import ExecutionRerunForm, ExecutionSubmitForm
from executions.models import Execution
from executions.state import TransitionError
from routing.models import AgentConfig


def _render(request: HttpRequest, template_name: str, context: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(presenters.render_text(template_name, context, request), status=status)


def _list_context(request: HttpRequest, form: ExecutionSubmitForm) -> dict:
    context = list_page.list_context(request.user, request.GET)
    return {**context, "form": form, "agent_names": list_page.agent_names()}


@require_safe
@login_required
def execution_list(request: HttpRequest) -> HttpResponse:
    """The filtered list; a filter or page change made with HTMX gets the results part only."""
    if request.htmx and request.htmx.target == "execution-results":
        context = list_page.list_context(request.user, request.GET)
        return _render(request, "executions/list.html#execution-results", {**context, "swapped": True})
    return _render(request, "executions/list.html", _list_context(request, ExecutionSubmitForm()))


@require_POST
@login_required
def execution_submit(request: HttpRequest) -> HttpResponse:
    form = ExecutionSubmitForm(request.POST)
    if form.is_valid():
        try:
            execution = services.execution_submit(**form.submit_kwargs(), submitted_by=request.user)
        except services.SubmitError as exc:
            form.add_refusal(exc)
        else:
            return redirect("executions:detail", execution_id=execution.pk)
    # The bound form goes back as typed, with the reason it was refused.
    return _render(request, "executions/list.html", _list_context(request, form), status=400)


def _detail_context(request: HttpRequest, execution_id: int, **extra) -> dict:
    access.execution_for(request.user, execution_id)
    page = presenters.execution_page(execution_id=execution_id)
    if page is None:
        raise Http404("No such execution.")
    # Only the re-runs this user may open: an operator's re-run of Alice's run is not hers to see.
    visible = access.executions_visible_to(request.user)
    reruns = selectors.execution_reruns(execution_id=execution_id, executions=visible)
    page["reruns"], page["reruns_more"] = reruns[: selectors.RERUNS_SHOWN], len(reruns) > selectors.RERUNS_SHOWN
    return {**page, **_correction_context(request, page["execution"]), **extra}


def _correction_context(request: HttpRequest, execution: Execution) -> dict:
    """The routing correction panel: the corrections made so far and, for those who may, the form."""
    if not routing_corrections.correctable(execution):
        return {}
    context = {"correctable": True, "corrections": routing_corrections.corrections_of(execution)}
    if routing_corrections.may_correct(request.user):
        others = AgentConfig.objects.filter(enabled=True).exclude(pk=execution.agent_id).order_by("name")
        context["correct_to"] = list(others.values_list("name", flat=True))
    return context


@require_safe
@login_required
def execution_detail(request: HttpRequest, execution_id: int) -> HttpResponse:
    return _render(request, "executions/detail.html", _detail_context(request, execution_id))


def _same_json(a, b) -> bool:
    """Equal as JSON: ``1``, ``1.0`` and ``true`` differ (Python's ``==`` says they are equal)."""
    try:
        return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
    except (RecursionError, TypeError, ValueError):  # too deep to print: the service refuses it anyway
        return False


@require_http_methods(["GET", "HEAD", "POST"])
@login_required
def execution_rerun(request: HttpRequest, execution_id: int) -> HttpResponse:
    """Run a finished execution again as a new one, its input edited first; GET shows the form alone."""
    execution = access.execution_for(request.user, execution_id)
    if request.method == "GET":
        return _render(request, "executions/rerun.html", _detail_context(request, execution_id))
    form = ExecutionRerunForm(request.POST)
    if form.is_valid():
        edited = form.cleaned_data["input"]
        try:
            again = services.execution_rerun(
                execution=execution,
                by=request.user,
                # Unchanged input runs the same task; edited input gets a task of its own.
                input_data=None if _same_json(edited, execution.task.input_data) else edited,
            )
        except services.SubmitError as exc:  # the agent was disabled since, the input too deep...
            form.add_refusal(exc)
        except TransitionError as exc:  # not finished (a stale page)
            form.add_error(None, str(exc))
        else:
            return redirect("executions:detail", execution_id=again.pk)
    context = _detail_context(request, execution_id, rerun_form=form)
    return _render(request, "executions/rerun.html", context, status=400)


def _act(request: HttpRequest, execution_id: int, action: Callable[..., Execution]) -> HttpResponse:
    execution = access.execution_for(request.user, execution_id)
    refused = ""
    try:
        action(execution=execution, by=request.user)
    except TransitionError as exc:
        refused = str(exc)
    if request.htmx:
        page = presenters.execution_page(execution_id=execution_id, with_log=False)
        # 409 is swapped too (see the htmx-config meta tag in base.html), so the refusal shows in place.
        return _render(
            request,
            "executions/detail.html#execution-header",
            {**page, "action_error": refused},
            status=409 if refused else 200,
        )
    if refused:
        messages.error(request, refused)
    return redirect("executions:detail", execution_id=execution_id)


@require_POST
@login_required
def execution_cancel(request: HttpRequest, execution_id: int) -> HttpResponse:
    return _act(request, execution_id, services.execution_cancel)


@require_POST
@login_required
def execution_retry(request: HttpRequest, execution_id: int) -> HttpResponse:
    return _act(request, execution_id, services.execution_retry)


@require_POST
@login_required
def execution_correct_routing(request: HttpRequest, execution_id: int) -> HttpResponse:
    """Record "it should have gone to X" for the router, which uses it from the next task on."""
    execution = access.execution_for(request.user, execution_id)
    # Asked before the agent is read, as the API does: a run's owner who may not correct gets a 403 whatever she posts.
    if not routing_corrections.may_correct(request.user):
        raise PermissionDenied(f"Correcting the router needs the {routing_corrections.CORRECT_ROUTING} permission.")
    name = request.POST.get("agent", "")
    try:
        agent = AgentConfig.objects.filter(enabled=True, name=name).first()
        if agent is None:
            raise ValidationError(f"There is no enabled agent named {name!r}: pick one from the list.")
        routing_corrections.execution_correct_routing(
            execution=execution, agent=agent, by=request.user, note=request.POST.get("note", "")
        )
    except ValidationError as exc:
        context = _detail_context(request, execution_id, correction_error=" ".join(exc.messages))
        return _render(request, "executions/detail.html", context, status=400)
    messages.success(request, f"Noted: execution {execution.pk} should have gone to {agent.name}.")
    return redirect("executions:detail", execution_id=execution.pk)  # the page top, where the message shows
