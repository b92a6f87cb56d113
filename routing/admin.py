from django import forms
from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from routing.corrections import correction_problems, routing_correct
from routing.models import AgentConfig, RoutingCorrection
from routing.pretty_json import pretty_json_overrides


@admin.register(AgentConfig)
class AgentConfigAdmin(admin.ModelAdmin):
    list_display = ("name", "role", "kind", "enabled", "max_concurrency", "secret_env", "last_routed_at")
    list_filter = ("kind", "enabled", "last_routed_at")
    search_fields = ("name", "role", "description")
    list_editable = ("enabled",)
    readonly_fields = ("last_routed_at", "created_at", "updated_at")
    formfield_overrides = pretty_json_overrides()
    fieldsets = (
        (None, {"fields": ("name", "enabled", "role", "description", "instruction_template")}),
        ("How it runs", {"fields": ("kind", "settings", "secret_env", "max_concurrency", "default_timeout")}),
        ("What it accepts", {"fields": ("input_schema",)}),
        ("What it is good at (routing)", {"fields": ("capabilities", "example_tasks", "last_routed_at")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )


class RoutingCorrectionForm(forms.ModelForm):
    class Meta:
        model = RoutingCorrection
        fields = ("query", "chosen", "correct", "note")

    def clean(self):
        """Refused here, with the form shown again, for what ``routing_correct`` would refuse."""
        data = super().clean()
        if data.get("correct") is not None:
            for field, message in correction_problems(data.get("query", ""), data["correct"], data.get("chosen")):
                self.add_error(field, message)
        return data


@admin.register(RoutingCorrection)
class RoutingCorrectionAdmin(admin.ModelAdmin):
    """Operators' "this should have gone to X". A correction is added through ``routing_correct``
    (which stores its query's vector for every router); afterwards only its note may change, since
    the router has already learned from its query and agents."""

    form = RoutingCorrectionForm
    list_display = ("created_at", "query_shown", "chosen", "correct", "created_by", "execution_link")
    list_filter = ("correct", "chosen", "created_at")
    search_fields = ("query",)
    autocomplete_fields = ("chosen", "correct")
    list_select_related = ("chosen", "correct", "created_by")
    date_hierarchy = "created_at"
    LOCKED = ("query", "chosen", "correct", "execution_id", "created_by", "created_at")

    @admin.display(description="query", ordering="query")
    def query_shown(self, correction: RoutingCorrection) -> str:
        return Truncator(correction.query).chars(80)

    @admin.display(description="execution", ordering="execution_id")
    def execution_link(self, correction: RoutingCorrection) -> str:
        if correction.execution_id is None:
            return "-"
        url = reverse("executions:detail", args=[correction.execution_id])
        return format_html('<a href="{}">#{}</a>', url, correction.execution_id)

    def get_fields(self, request, obj=None):
        if obj is None:  # a run is corrected from its own page, which knows its query and agent
            return ("query", "chosen", "correct", "note")
        return (*self.LOCKED, "note")

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.LOCKED

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        saved = routing_correct(
            query=obj.query,
            correct=obj.correct,
            chosen=obj.chosen,
            by=request.user,
            note=obj.note,
        )
        # The admin logs and redirects to ``obj``: make it the row the service wrote.
        obj.__dict__.update({f.attname: getattr(saved, f.attname) for f in saved._meta.concrete_fields})
        obj._state.adding, obj._state.db = False, saved._state.db
