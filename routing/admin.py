from django.contrib import admin

from routing.models import AgentConfig
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
