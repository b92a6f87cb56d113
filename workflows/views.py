"""The workflow pages: definitions with a start form, recent runs, and a run's live page with its controls.

Views read through ``selectors`` (shaped by ``presenters``), narrowed by
``access`` to the runs the user may see (someone else's run is a 404, like a
missing one), and write only through ``services``; each control is one service call, and its answer is the
run page's own partials, the same ones the websocket pushes.
"""

from collections.abc import Callable

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe
from django_htmx.http import HttpResponseClientRedirect

from executions.presenters import render_text
from executions.validation import SubmitError
from workflows import access, presenters, selectors, services
from workflows.forms import RunRerunForm, StepDecisionForm, WorkflowStartForm
from workflows.models import WorkflowRun, WorkflowStatus


def _render(request: HttpRequest, template_name: str, context: dict, status: int = 200) -> HttpResponse:
    return HttpResponse(render_text(template_name, context, request), status=status)


def _status_filter(request: HttpRequest) -> str:
    status = request.GET.get("status", "")
    return status if status in WorkflowStatus.values else ""


def _before(request: HttpRequest) -> int | None:
    before = request.GET.get("before", "")
    return int(before) if before.isascii() and before.isdigit() and 0 < len(before) < 19 else None


def _list_context(request: HttpRequest, refused: WorkflowStartForm | None = None) -> dict:
    status = _status_filter(request)
    visible = access.runs_visible_to(request.user)
    runs = selectors.run_list(runs=visible, status=status or None, before=_before(request))
    more = len(runs) > selectors.RUNS_PER_PAGE
    runs = runs[: selectors.RUNS_PER_PAGE]
    definitions = selectors.definition_list()
    unplaced = refused
    for definition in definitions:
        if refused is not None and refused.data.get("definition") == definition.name:
            definition.form, unplaced = refused, None
        else:
            initial = {"definition": definition.name}
            definition.form = WorkflowStartForm(initial=initial, auto_id=_auto_id(definition.name))
    return {
        "definitions": definitions,
        "runs": runs,
        "next_before": runs[-1].pk if more else None,
        "status_counts": selectors.run_status_counts(runs=visible),
        "status_filter": status,
        # A refusal for a workflow the page does not list (gone meanwhile) shows above the list.
        "unplaced_errors": _errors(unplaced) if unplaced is not None else "",
    }


def _auto_id(name: str) -> str:
    return f"id_{name}_%s"


def _errors(form) -> str:
    return " ".join(error for errors in form.errors.values() for error in errors)


@require_safe
@login_required
def workflow_list(request: HttpRequest) -> HttpResponse:
    return _render(request, "workflows/list.html", _list_context(request))


@require_POST
@login_required
def workflow_start(request: HttpRequest) -> HttpResponse:
    form = WorkflowStartForm(request.POST, auto_id=_auto_id(request.POST.get("definition", "")))
    if form.is_valid():
        try:
            run = services.workflow_run_start(
                definition=form.cleaned_data["definition"], input=form.cleaned_data["input"], by=request.user
            )
        except (services.WorkflowError, SubmitError) as exc:
            form.add_error("input" if isinstance(exc, SubmitError) else None, str(exc))
        else:
            return redirect("workflows:run", run_id=run.pk)
    # The refused form goes back as typed, next to its definition, with the reason.
    return _render(request, "workflows/list.html", _list_context(request, refused=form), status=400)


def _page(request: HttpRequest, run_id: int) -> dict:
    page = presenters.run_page(run_id=run_id, user=request.user)
    if page is None:
        raise Http404("No such workflow run.")
    return page


@require_safe
@login_required
def run_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    access.run_for(request.user, run_id)
    return _render(request, "workflows/run.html", _page(request, run_id))


def _act(request: HttpRequest, run_id: int, action: Callable[[WorkflowRun], object]) -> HttpResponse:
    """One service call on a run the user may see; a refusal is a 409 whose message shows in place of the header."""
    return _answer(request, access.run_for(request.user, run_id), action)


def _answer(request: HttpRequest, run: WorkflowRun, action: Callable[[WorkflowRun], object]) -> HttpResponse:
    run_id = run.pk
    refused = ""
    try:
        action(run)
    except (services.WorkflowError, SubmitError) as exc:
        refused = str(exc)
    if request.htmx:
        page = _page(request, run_id)
        header = render_text("workflows/run.html#run-header", {**page, "action_error": refused}, request)
        others = presenters.run_panels(page, [name for name in presenters.RUN_PANELS if name != "run-header"])
        return HttpResponse(header + "".join(others.values()), status=409 if refused else 200)
    if refused:
        messages.error(request, refused)
    return redirect("workflows:run", run_id=run_id)


@require_POST
@login_required
def run_pause(request: HttpRequest, run_id: int) -> HttpResponse:
    return _act(request, run_id, lambda run: services.workflow_run_pause(run=run, by=request.user))


@require_POST
@login_required
def run_resume(request: HttpRequest, run_id: int) -> HttpResponse:
    return _act(request, run_id, lambda run: services.workflow_run_resume(run=run, by=request.user))


@require_POST
@login_required
def run_cancel(request: HttpRequest, run_id: int) -> HttpResponse:
    return _act(request, run_id, lambda run: services.workflow_run_cancel(run=run, by=request.user))


@require_POST
@login_required
def run_rerun(request: HttpRequest, run_id: int) -> HttpResponse:
    def rerun(run: WorkflowRun):
        form = RunRerunForm(request.POST, current_input=run.input)
        if not form.is_valid():
            # A typing slip is refused like the service refuses: in place, nothing written.
            raise services.WorkflowError(_errors(form))
        data = form.cleaned_data
        return services.workflow_run_rerun(run=run, from_step=data["from_step"], input=data["input"], by=request.user)

    return _act(request, run_id, rerun)


def _decide(request: HttpRequest, run_id: int, step_id: str, decide: Callable) -> HttpResponse:
    def act(run: WorkflowRun):
        form = StepDecisionForm(request.POST)
        if not form.is_valid():
            raise services.WorkflowError(_errors(form))
        return decide(run=run, step_id=step_id, by=request.user, comment=form.cleaned_data["comment"])

    run = access.run_to_decide(request.user, run_id, step_id)
    if access.may_see_run(request.user, run.pk):
        return _answer(request, run, act)
    # A named approver who may not see the rest of the run: the outcome as a message on the list page.
    try:
        act(run)
        messages.success(request, f"Decided step {step_id} of run {run_id}.")
    except (services.WorkflowError, SubmitError) as exc:
        messages.error(request, str(exc))
    if request.htmx:
        return HttpResponseClientRedirect(reverse("workflows:list"))
    return redirect("workflows:list")


@require_POST
@login_required
def step_approve(request: HttpRequest, run_id: int, step_id: str) -> HttpResponse:
    return _decide(request, run_id, step_id, services.workflow_step_approve)


@require_POST
@login_required
def step_reject(request: HttpRequest, run_id: int, step_id: str) -> HttpResponse:
    return _decide(request, run_id, step_id, services.workflow_step_reject)
