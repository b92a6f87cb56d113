"""Who may see and act on which workflow runs and definitions (the rule of ``executions.access``).

A user sees and acts on the runs they started; ``workflows.operate_runs``
(the "operators" group) sees and acts on all. Definitions are readable by
every signed-in user and managed by those with the model permissions
(``workflows.add_workflowdefinition`` / ``change_workflowdefinition``).
An approval step is decided by the users or group it names, whether or not
they may see the rest of the run (``workflows.services.may_approve``).
"""

from django.db.models import QuerySet
from django.http import Http404

from workflows.models import WorkflowRun

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


def run_for(user, run_id: int, runs: QuerySet[WorkflowRun] | None = None) -> WorkflowRun:
    """The run ``user`` asked for, or ``Http404`` whether it is missing or not theirs."""
    run = runs_visible_to(user, runs).filter(pk=run_id).first()
    if run is None:
        raise Http404(f"No workflow run {run_id}.")
    return run
