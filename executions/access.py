"""Who may see and act on which tasks and executions: the same rule on every interface.

A user sees and acts on what they submitted; a user with the
``executions.operate_executions`` permission (the "operators" group has it,
superusers have every permission) sees and acts on everything. Pages, the
admin, the JSON API, the websockets and the CLI's ``--as USER`` all ask here.

A forbidden execution is reported as missing (``Http404``), so that ids do not
tell anyone what exists.
"""

from django.db.models import QuerySet
from django.http import Http404

from executions.models import Execution, ExecutionEvent, Task

OPERATE_EXECUTIONS = "executions.operate_executions"
OPERATORS_GROUP = "operators"


def is_operator(user) -> bool:
    """May ``user`` see and act on every user's executions?"""
    return bool(user and user.is_authenticated and user.is_active and user.has_perm(OPERATE_EXECUTIONS))


def executions_visible_to(user, executions: QuerySet[Execution] | None = None) -> QuerySet[Execution]:
    """``executions`` (default: all) narrowed to what ``user`` may see."""
    executions = Execution.objects.all() if executions is None else executions
    if is_operator(user):
        return executions
    if not (user and user.is_authenticated and user.is_active):
        return executions.none()
    return executions.filter(submitted_by=user)


def tasks_visible_to(user, tasks: QuerySet[Task] | None = None) -> QuerySet[Task]:
    tasks = Task.objects.all() if tasks is None else tasks
    if is_operator(user):
        return tasks
    if not (user and user.is_authenticated and user.is_active):
        return tasks.none()
    return tasks.filter(created_by=user)


def events_visible_to(user, events: QuerySet[ExecutionEvent] | None = None) -> QuerySet[ExecutionEvent]:
    events = ExecutionEvent.objects.all() if events is None else events
    if is_operator(user):
        return events
    if not (user and user.is_authenticated and user.is_active):
        return events.none()
    return events.filter(execution__submitted_by=user)


def may_see_execution(user, execution_id: int) -> bool:
    return executions_visible_to(user).filter(pk=execution_id).exists()


def execution_for(user, execution_id: int, executions: QuerySet[Execution] | None = None) -> Execution:
    """The execution ``user`` asked for, or ``Http404`` whether it is missing or not theirs."""
    execution = executions_visible_to(user, executions).filter(pk=execution_id).first()
    if execution is None:
        raise Http404(f"No execution {execution_id}.")
    return execution


def task_for(user, task_id: int) -> Task:
    task = tasks_visible_to(user).filter(pk=task_id).first()
    if task is None:
        raise Http404(f"No task {task_id}.")
    return task


def grant_to_operators(permissions: list[tuple[str, str]]) -> None:
    """Give the "operators" group these (app label, codename) permissions, creating the group.

    Each app calls it after its migrations (``post_migrate``), so a fresh
    install has a group that an admin only needs to add people to.
    """
    from django.contrib.auth.models import Group, Permission

    group, _ = Group.objects.get_or_create(name=OPERATORS_GROUP)
    for app_label, codename in permissions:
        permission = Permission.objects.filter(content_type__app_label=app_label, codename=codename).first()
        if permission is not None:
            group.permissions.add(permission)
