"""Admin for tasks, executions and their events.

``state`` is read-only here as everywhere: cancel, retry and submit are actions
that call the same services as the views, the API and the CLI, as the user who
clicked. Every list holds what that user may see (``access``): staff who are
not operators see their own tasks and executions, as on the pages.
"""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils.safestring import mark_safe

from executions import access, presenters
from executions.models import Execution, ExecutionEvent, Task
from executions.services import SubmitError, execution_cancel, execution_retry, execution_submit
from executions.state import TransitionError


class ExecutionEventInline(admin.TabularInline):
    model = ExecutionEvent
    fields = ("id", "created_at", "kind", "from_state", "to_state", "actor", "data")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("id",)
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def _apply(modeladmin, request, queryset: QuerySet, action, verb: str) -> None:
    done = 0
    for execution in queryset:
        try:
            action(execution=execution, by=request.user)
            done += 1
        except TransitionError as exc:
            modeladmin.message_user(request, str(exc), messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{verb} {done} execution(s).", messages.SUCCESS)


@admin.action(description="Cancel selected executions")
def cancel_executions(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, execution_cancel, "Cancelled")


@admin.action(description="Retry selected failed executions")
def retry_executions(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, execution_retry, "Retried")


@admin.register(Execution)
class ExecutionAdmin(admin.ModelAdmin):
    list_display = ("id", "task", "agent", "state", "progress", "attempt", "priority", "routed", "submitted_by",
                    "created_at")  # fmt: skip
    list_filter = ("state", "agent", "created_at")
    search_fields = ("id", "task__name", "agent__name", "current_step")
    list_select_related = ("task", "agent", "submitted_by")
    date_hierarchy = "created_at"
    actions = [cancel_executions, retry_executions]
    inlines = [ExecutionEventInline]
    readonly_fields = ["routing_decision", *(field.name for field in Execution._meta.fields)]

    @admin.display(description="routed by")
    def routed(self, execution: Execution) -> str:
        return (execution.routing or {}).get("strategy", "") or "-"

    @admin.display(description="routing decision")
    def routing_decision(self, execution: Execution) -> str:
        """The router's choice, its reason and every candidate it weighed: the execution page's own partial."""
        routing = presenters.routing_summary(execution.routing)
        if routing is None:
            return "The agent was named at submit; no routing."
        # The template engine escaped every value; the result is HTML.
        return mark_safe(presenters.render_text("executions/detail.html#routing-decision", {"routing": routing}))

    def get_queryset(self, request) -> QuerySet[Execution]:
        return access.executions_visible_to(request.user, super().get_queryset(request))

    def has_add_permission(self, request) -> bool:
        return False  # submit from the task list: "Submit selected tasks"


@admin.action(description="Submit selected tasks to their agent")
def submit_tasks(modeladmin, request, queryset):
    submitted = 0
    for task in queryset.select_related("agent"):
        try:
            execution_submit(task=task, submitted_by=request.user)
            submitted += 1
        except SubmitError as exc:
            modeladmin.message_user(request, f"{task}: {exc}", messages.ERROR)
    if submitted:
        modeladmin.message_user(request, f"Submitted {submitted} task(s).", messages.SUCCESS)


class ExecutionInline(admin.TabularInline):
    model = Execution
    fields = ("id", "agent", "state", "progress", "attempt", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def get_queryset(self, request) -> QuerySet[Execution]:
        # An operator may have run someone's task: its owner sees only their own executions of it.
        return access.executions_visible_to(request.user, super().get_queryset(request))

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "agent", "created_by", "created_at")
    list_filter = ("agent", "created_at")
    search_fields = ("name", "description")
    actions = [submit_tasks]
    inlines = [ExecutionInline]
    readonly_fields = ("created_by", "created_at")
    list_select_related = ("agent", "created_by")

    def get_queryset(self, request) -> QuerySet[Task]:
        return access.tasks_visible_to(request.user, super().get_queryset(request))

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ExecutionEvent)
class ExecutionEventAdmin(admin.ModelAdmin):
    list_display = ("id", "execution", "kind", "from_state", "to_state", "actor", "created_at")
    list_filter = ("kind", "to_state")
    search_fields = ("execution__id", "actor__username")
    list_select_related = ("execution__task", "actor")
    readonly_fields = ("id", "execution", "kind", "from_state", "to_state", "actor", "data", "created_at")

    def get_queryset(self, request) -> QuerySet[ExecutionEvent]:
        return access.events_visible_to(request.user, super().get_queryset(request))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
