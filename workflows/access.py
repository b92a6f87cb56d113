"""Who may see and act on which workflow runs and definitions (the rule of ``executions.access``).

A user sees and acts on the runs they started; ``workflows.operate_runs``
(the "operators" group) sees and acts on all. Definitions are readable by
every signed-in user and managed by those with the model permissions
(``workflows.add_workflowdefinition`` / ``change_workflowdefinition``).
An approval step is decided by the users or group it names, whether or not
they may see the rest of the run; a step that names nobody by those who may
see the run (``may_approve``, which the services check).
"""

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404

from workflows.engine import spec_of
from workflows.models import WorkflowRun
from workflows.spec import ApprovalSpec

OPERATE_RUNS = "workflows.operate_runs"
ADD_DEFINITION = "workflows.add_workflowdefinition"
CHANGE_DEFINITION = "workflows.change_workflowdefinition"


def _signed_in(user) -> bool:
    return bool(user and user.is_authenticated and user.is_active)


def is_run_operator(user) -> bool:
    return _signed_in(user) and user.has_perm(OPERATE_RUNS)


def may_manage_definitions(user) -> bool:
    """Save new definitions or new versions of existing ones."""
    return _signed_in(user) and user.has_perm(ADD_DEFINITION) and user.has_perm(CHANGE_DEFINITION)


def runs_visible_to(user, runs: QuerySet[WorkflowRun] | None = None) -> QuerySet[WorkflowRun]:
    runs = WorkflowRun.objects.all() if runs is None else runs
    if is_run_operator(user):
        return runs
    if not _signed_in(user):
        return runs.none()
    return runs.filter(created_by=user)


def may_see_run(user, run_id: int) -> bool:
    return runs_visible_to(user).filter(pk=run_id).exists()


def run_for(user, run_id: int, runs: QuerySet[WorkflowRun] | None = None) -> WorkflowRun:
    """The run ``user`` asked for, or ``Http404`` whether it is missing or not theirs."""
    run = runs_visible_to(user, runs).filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No workflow run {run_id}.")
    return run


def may_act_on_run(user, run: WorkflowRun) -> bool:
    """Pause, resume, cancel, re-run: the run's owner or an operator."""
    return is_run_operator(user) or (_signed_in(user) and run.created_by_id == user.pk)


def _names(user, approval: ApprovalSpec) -> bool:
    """Is ``user`` among the approvers ``approval`` names, by name or group?"""
    if user.get_username() in approval.approvers:
        return True
    return bool(approval.group) and user.groups.filter(name=approval.group).exists()


def may_approve(user, approval: ApprovalSpec | None, run: WorkflowRun) -> bool:
    """Who decides an approval step of ``run``: the users or group it names (and only they:
    the person who started the run cannot approve their own request for someone else's
    approval); when it names nobody, whoever may see the run."""
    if approval is None or not _signed_in(user):
        return False
    if user.is_superuser:
        return True
    if approval.approvers or approval.group:
        return _names(user, approval)
    return run.created_by_id == user.pk or is_run_operator(user)


def run_to_decide(user, run_id: int, step_id: str) -> WorkflowRun:
    """The run whose step ``step_id`` ``user`` asks to decide: one they may see, or one whose step
    names them as an approver; else ``Http404``, as for a missing run."""
    run = runs_visible_to(user).filter(pk=run_id).first()
    if run is not None or not _signed_in(user):
        return _found(run, run_id)
    run = WorkflowRun.objects.select_related("version").filter(pk=run_id).first()
    if run is None or run.version_id is None:
        return _found(None, run_id)
    try:
        approval = spec_of(run).step(step_id).approval
    except KeyError:
        approval = None
    named = approval is not None and (approval.approvers or approval.group) and _names(user, approval)
    return _found(run if named else None, run_id)


def _found(run: WorkflowRun | None, run_id: int) -> WorkflowRun:
    if run is None:
        raise Http404(f"No workflow run {run_id}.")
    return run


def run_for_decision(user, run_id: int, step_id: str) -> WorkflowRun:
    """The run whose step ``user`` wants to approve or reject.

    A user who may decide the step gets the run even if they may not see it; one who may
    see the run but not decide its step is refused (``PermissionDenied``); to anyone else
    the run does not exist (``Http404``). Whether the step is waiting is the service's to say.
    """
    run = WorkflowRun.objects.select_related("version").defer("version__spec").filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No workflow run {run_id}.")
    approval = None
    if run.version_id is not None:
        try:
            approval = spec_of(run).step(step_id).approval
        except KeyError:
            pass
    if approval is not None and may_approve(user, approval, run):
        return run
    if runs_visible_to(user).filter(pk=run_id).exists():
        if approval is None:
            return run  # no such approval step: the service says so
        raise PermissionDenied(f"You may not decide step {step_id!r} of run {run_id}.")
    raise Http404(f"No workflow run {run_id}.")
