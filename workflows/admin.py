"""Admin for workflow definitions, runs, their steps and history.

Definitions are added by pasting a JSON or YAML definition, validated before it
is stored (every problem named with its step and field); a changed definition
becomes a new version, for those with the definition model permissions. Run
status and step state are read-only: pause, resume, cancel and start are
actions that call the same services as the pages and the CLI, as the user who
clicked; the run list holds the runs that user may see (``access``).
"""

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.urls import reverse
from django.utils.html import format_html_join

from executions.admin import progress_bar
from executions.validation import SubmitError
from routing.pretty_json import pretty_json_html
from workflows import access
from workflows.models import RunEvent, StepRun, StepState, WorkflowDefinition, WorkflowRun
from workflows.services import (
    WorkflowError,
    workflow_definition_check,
    workflow_definition_save,
    workflow_run_cancel,
    workflow_run_pause,
    workflow_run_rerun,
    workflow_run_resume,
    workflow_run_start,
    workflow_step_approve,
    workflow_step_reject,
)
from workflows.spec import SpecError


class DefinitionForm(forms.ModelForm):
    source = forms.CharField(
        label="Definition (JSON or YAML)",
        widget=forms.Textarea(attrs={"rows": 24, "cols": 100, "spellcheck": "false", "style": "font-family:monospace"}),
        help_text="Saving validates it; a changed definition becomes a new version, and runs keep theirs.",
    )

    class Meta:
        model = WorkflowDefinition
        fields = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        latest = self.instance.latest_version if self.instance.pk else None
        if latest is not None:
            self.fields["source"].initial = json.dumps(latest.spec, indent=2)

    def clean_source(self):
        source = self.cleaned_data["source"]
        try:
            workflow_definition_check(source=source)
        except SpecError as exc:
            raise forms.ValidationError([str(problem) for problem in exc.problems]) from exc
        return source


def _each(modeladmin, request, queryset, action, verb: str) -> None:
    done = 0
    for item in queryset:
        try:
            action(item)
            done += 1
        except (WorkflowError, SubmitError) as exc:
            modeladmin.message_user(request, f"{item}: {exc}", messages.WARNING)
    if done:
        modeladmin.message_user(request, f"{verb} {done}.", messages.SUCCESS)


@admin.action(description="Start a run of the selected workflows (empty input)")
def start_runs(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lambda d: workflow_run_start(definition=d, by=request.user), "Started")


@admin.register(WorkflowDefinition)
class WorkflowDefinitionAdmin(admin.ModelAdmin):
    form = DefinitionForm
    list_display = ("name", "description", "created_at")
    list_filter = ("created_at",)
    search_fields = ("name", "description")
    date_hierarchy = "created_at"
    readonly_fields = ("versions",)
    actions = [start_runs]

    def get_fields(self, request, obj=None):
        return ["source", "versions"] if obj else ["source"]

    @admin.display(description="versions")
    def versions(self, definition: WorkflowDefinition) -> str:
        rows = definition.versions.select_related("created_by").order_by("-number")
        return format_html_join(
            "", "<div>v{} · {} · {} · {} run(s)</div>",
            ((v.number, v.created_at, v.created_by or "-", v.runs.count()) for v in rows),
        ) or "-"  # fmt: skip

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.user = request.user
        return form

    def save_model(self, request, obj, form, change):
        version = workflow_definition_save(source=form.cleaned_data["source"], by=request.user)
        obj.pk, obj.name = version.definition.pk, version.definition.name
        obj.refresh_from_db()


def _pretty(field: str, description: str):
    @admin.display(description=description)
    def show(self, obj):
        return pretty_json_html(getattr(obj, field))

    return show


class StepRunInline(admin.TabularInline):
    model = StepRun
    fields = ("step_id", "index", "iteration", "state", "execution", "output_json", "error_json", "decided_by",
              "comment", "superseded", "started_at", "finished_at")  # fmt: skip
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("id",)
    output_json = _pretty("output", "output")
    error_json = _pretty("error", "error")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class RunEventInline(admin.TabularInline):
    model = RunEvent
    fields = ("id", "created_at", "kind", "step_id", "actor", "data_json")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("id",)
    data_json = _pretty("data", "data")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.action(description="Pause selected runs")
def pause_runs(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lambda run: workflow_run_pause(run=run, by=request.user), "Paused")


@admin.action(description="Resume selected runs")
def resume_runs(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lambda run: workflow_run_resume(run=run, by=request.user), "Resumed")


@admin.action(description="Cancel selected runs")
def cancel_runs(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lambda run: workflow_run_cancel(run=run, by=request.user), "Cancelled")


def _waiting_steps(run: WorkflowRun) -> list[str]:
    return list(run.steps.filter(superseded=False, state=StepState.WAITING).values_list("step_id", flat=True))


@admin.action(description="Approve the waiting approval steps of selected runs")
def approve_steps(modeladmin, request, queryset):
    def approve(run):
        if not (steps := _waiting_steps(run)):
            raise WorkflowError(f"Run {run.pk} has no step waiting for approval.")
        for step_id in steps:
            workflow_step_approve(run=run, step_id=step_id, by=request.user, comment="approved in the admin")

    _each(modeladmin, request, queryset, approve, "Approved the waiting steps of")


@admin.action(description="Reject the waiting approval steps of selected runs")
def reject_steps(modeladmin, request, queryset):
    def reject(run):
        if not (steps := _waiting_steps(run)):
            raise WorkflowError(f"Run {run.pk} has no step waiting for approval.")
        for step_id in steps:
            workflow_step_reject(run=run, step_id=step_id, by=request.user, comment="rejected in the admin")

    _each(modeladmin, request, queryset, reject, "Rejected the waiting steps of")


@admin.action(description="Re-run selected runs from their failed step (what succeeded is kept)")
def rerun_from_failed(modeladmin, request, queryset):
    def rerun(run):
        failed = run.steps.filter(superseded=False, state__in=[StepState.FAILED, StepState.CANCELLED]).first()
        if failed is None:
            raise WorkflowError(f"Run {run.pk} has no failed or cancelled step to re-run from.")
        workflow_run_rerun(run=run, from_step=failed.step_id, by=request.user)

    _each(modeladmin, request, queryset, rerun, "Re-ran")


@admin.register(WorkflowRun)
class WorkflowRunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "version", "status", "progress_shown", "created_by", "created_at", "finished_at")
    list_filter = ("status", "version__definition", "created_at", "finished_at")
    search_fields = ("=id", "name")
    search_help_text = "A run id, or words of its name."
    list_select_related = ("version__definition", "created_by")
    date_hierarchy = "created_at"
    actions = [pause_runs, resume_runs, cancel_runs, approve_steps, reject_steps, rerun_from_failed]
    inlines = [StepRunInline, RunEventInline]
    fieldsets = (
        (None, {"fields": ("name", "description", "version", "status", "progress_shown", "created_by")}),
        ("Input and outcome", {"fields": ("input_json", "output_json", "error_json", "metadata_json")}),
        ("Times", {"fields": ("created_at", "started_at", "finished_at", "updated_at")}),
    )
    readonly_fields = [name for _, options in fieldsets for name in options["fields"]]
    input_json = _pretty("input", "input")
    output_json = _pretty("output", "output")
    error_json = _pretty("error", "error")
    metadata_json = _pretty("metadata", "metadata")

    @admin.display(description="steps ended")
    def progress_shown(self, run: WorkflowRun) -> str:
        total = len(run.version.spec.get("steps", [])) if run.version else 0
        if not total:
            return str(run.steps_ended)
        return progress_bar(100 * run.steps_ended / total)

    def view_on_site(self, run: WorkflowRun) -> str:
        return reverse("workflows:run", args=[run.pk])

    def get_queryset(self, request) -> QuerySet[WorkflowRun]:
        return access.runs_visible_to(request.user, super().get_queryset(request))

    def has_add_permission(self, request) -> bool:
        return False  # start runs from a definition: "Start a run of the selected workflows"
