"""Admin for tasks, executions and their events.

``state`` is read-only here as everywhere: cancel, retry, re-run and submit are
actions and buttons that call the same services as the views, the API and the
CLI, as the user who clicked. Every list holds what that user may see
(``access``): staff who are not operators see their own tasks and executions,
as on the pages. The lists stay fast at a million rows (``admin_lists``).
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from executions import access, presenters
from executions.admin_lists import BigTableAdmin
from executions.models import Execution, ExecutionEvent, Task
from executions.routing_corrections import correctable
from executions.services import (
    SubmitError,
    execution_cancel,
    execution_rerun,
    execution_retry,
    execution_submit,
)
from executions.state import ACTIVE, WAITING, TransitionError
from routing.input_schemas import input_problems
from routing.models import AgentConfig
from routing.pretty_json import pretty_json_html, pretty_json_overrides

SEARCH_HELP = "An execution or task id, or an agent's exact name. Text search is on the executions page."


def _pretty(field, description: str):
    """A read-only field showing JSON indented: ``field`` is an attribute's name or a function of the row."""
    read = field if callable(field) else (lambda obj: getattr(obj, field))

    @admin.display(description=description)
    def show(self, obj):
        return pretty_json_html(read(obj))

    return show


def progress_bar(percent: float) -> str:
    shown = round(percent or 0)
    return format_html('<progress value="{}" max="100" title="{}%">{}%</progress> {}%', shown, shown, shown, shown)


class ExecutionEventInline(admin.TabularInline):
    model = ExecutionEvent
    fields = ("id", "created_at", "kind", "from_state", "to_state", "actor", "data_json")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("id",)
    show_change_link = False
    data_json = _pretty("data", "data")

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


# The change page's buttons: (verb, label, whether it applies to the execution as it is now).
BUTTONS = (
    ("cancel", "Cancel", lambda execution: execution.state in WAITING | ACTIVE),
    ("retry", "Retry", lambda execution: execution.state == "FAILED"),
    ("rerun", "Run again", lambda execution: execution.is_finished),
)


@admin.register(Execution)
class ExecutionAdmin(BigTableAdmin):
    list_display = ("id", "task", "agent", "state", "progress_shown", "attempt", "priority", "routed", "submitted_by",
                    "created_at")  # fmt: skip
    list_filter = ("state", "agent", "created_at")
    id_searches = ("pk", "task_id")
    name_searches = (("agent", AgentConfig),)
    search_help_text = SEARCH_HELP
    list_select_related = ("task", "agent", "submitted_by")
    list_defer = ("result", "error", "steps", "metadata", "usage", "task__input_data", "task__description")
    actions = [cancel_executions, retry_executions]
    inlines = [ExecutionEventInline]
    change_form_template = "admin/executions/execution/change_form.html"
    fieldsets = (
        (None, {"fields": ("task", "agent", "state", "progress_shown", "current_step", "attempt", "max_attempts",
                           "priority", "timeout_seconds", "submitted_by", "rerun_of", "concurrency_group")}),
        ("Input and outcome", {"fields": ("input_json", "result_json", "error_json", "usage_json")}),
        ("Steps", {"fields": ("steps_json",), "classes": ("collapse",)}),
        ("Routing", {"fields": ("routing_decision", "correct_routing", "routing_json")}),
        ("Metadata", {"fields": ("metadata_json",)}),
        ("Times and lease", {"fields": ("created_at", "queued_at", "not_before", "started_at", "finished_at",
                                        "updated_at", "lease_owner", "lease_expires_at")}),
    )  # fmt: skip
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    input_json = _pretty(lambda execution: execution.task.input_data, "input")
    result_json = _pretty("result", "result")
    error_json = _pretty("error", "error")
    usage_json = _pretty("usage", "usage")
    steps_json = _pretty("steps", "steps")
    routing_json = _pretty("routing", "routing (as stored)")
    metadata_json = _pretty("metadata", "metadata")

    @admin.display(description="progress", ordering=None)
    def progress_shown(self, execution: Execution) -> str:
        return progress_bar(execution.progress)

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

    @admin.display(description="correct routing")
    def correct_routing(self, execution: Execution) -> str:
        """To the execution page's form, which calls the same service as the API (it needs no second form here)."""
        if not correctable(execution):
            return "-"
        url = reverse("executions:detail", args=[execution.pk]) + "#routing-correction"
        return format_html('<a class="button" href="{}">Correct routing</a> on the execution page', url)

    def view_on_site(self, execution: Execution) -> str:
        return reverse("executions:detail", args=[execution.pk])

    def get_queryset(self, request) -> QuerySet[Execution]:
        # The task's input is shown on the change page: read with the row, not by a query per field.
        queryset = super().get_queryset(request).select_related("task", "agent", "submitted_by")
        return access.executions_visible_to(request.user, queryset)

    def has_add_permission(self, request) -> bool:
        return False  # submit from the task list: "Submit selected tasks"

    # The buttons ----------------------------------------------------------------

    def get_urls(self):
        act = self.admin_site.admin_view(self.act_view)
        return [path("<path:object_id>/act/<str:verb>/", act, name="executions_execution_act"), *super().get_urls()]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        execution = self.get_object(request, unquote(object_id))
        buttons = []
        if execution is not None:
            buttons = [
                {"label": label, "url": reverse("admin:executions_execution_act", args=[execution.pk, verb])}
                for verb, label, applies in BUTTONS
                if applies(execution)
            ]
        return super().change_view(request, object_id, form_url, {**(extra_context or {}), "buttons": buttons})

    def act_view(self, request, object_id: str, verb: str):
        """Cancel, retry or re-run one execution through its service, as the user who clicked."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        execution = self.get_object(request, unquote(object_id))  # someone else's is "not there"
        if execution is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_permission(request, execution):
            raise PermissionDenied
        page = reverse("admin:executions_execution_change", args=[execution.pk])
        try:
            if verb == "cancel":
                execution_cancel(execution=execution, by=request.user, reason="cancelled in the admin")
                self.message_user(request, f"Cancelled execution {execution.pk}.", messages.SUCCESS)
            elif verb == "retry":
                execution_retry(execution=execution, by=request.user)
                self.message_user(request, f"Retried execution {execution.pk}.", messages.SUCCESS)
            elif verb == "rerun":
                new = execution_rerun(execution=execution, by=request.user)
                self.message_user(request, f"Execution {new.pk} runs execution {execution.pk} again.", messages.SUCCESS)
                page = reverse("admin:executions_execution_change", args=[new.pk])
            else:
                return HttpResponseNotAllowed(["POST"])
        except (TransitionError, SubmitError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return HttpResponseRedirect(page)


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
    fields = ("id", "agent", "state", "progress_shown", "attempt", "created_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    @admin.display(description="progress")
    def progress_shown(self, execution: Execution) -> str:
        return progress_bar(execution.progress)

    def get_queryset(self, request) -> QuerySet[Execution]:
        # An operator may have run someone's task: its owner sees only their own executions of it.
        return access.executions_visible_to(request.user, super().get_queryset(request))

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class TaskForm(forms.ModelForm):
    def clean(self):
        """A task for an agent must fit the agent's input schema, as its submit would check."""
        data = super().clean()
        agent = data.get("agent")
        if agent is not None and "input_data" in data:
            problems = input_problems(agent.input_schema, data["input_data"])
            if problems:
                self.add_error("input_data", [f"Does not fit {agent.name}'s input schema: {p}" for p in problems])
        return data


@admin.register(Task)
class TaskAdmin(BigTableAdmin):
    form = TaskForm
    list_display = ("id", "name", "agent", "created_by", "created_at")
    list_filter = ("agent", "created_at")
    name_searches = (("agent", AgentConfig),)
    search_help_text = "A task id, or an agent's exact name."
    actions = [submit_tasks]
    inlines = [ExecutionInline]
    readonly_fields = ("created_by", "created_at")
    list_select_related = ("agent", "created_by")
    list_defer = ("input_data", "description")
    formfield_overrides = pretty_json_overrides()

    def get_queryset(self, request) -> QuerySet[Task]:
        return access.tasks_visible_to(request.user, super().get_queryset(request))

    def save_model(self, request, obj, form, change):
        if not change:
            obj.created_by = request.user
        super().save_model(request, obj, form, change)


@admin.register(ExecutionEvent)
class ExecutionEventAdmin(BigTableAdmin):
    list_display = ("id", "execution", "kind", "from_state", "to_state", "actor", "created_at")
    list_filter = ("kind", "to_state")
    id_searches = ("pk", "execution_id")
    search_help_text = "An event id, or an execution id for its events."
    list_select_related = ("execution", "actor")
    list_defer = ("data", "execution__result", "execution__error", "execution__steps", "execution__routing",
                  "execution__metadata", "execution__usage")  # fmt: skip
    fields = ("id", "execution", "kind", "from_state", "to_state", "actor", "data_json", "created_at")
    readonly_fields = fields
    data_json = _pretty("data", "data")

    def view_on_site(self, event: ExecutionEvent) -> str:
        return reverse("executions:detail", args=[event.execution_id])

    def get_queryset(self, request) -> QuerySet[ExecutionEvent]:
        return access.events_visible_to(request.user, super().get_queryset(request))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
