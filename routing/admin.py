from django.contrib import admin

from routing.models import AgentConfig


@admin.register(AgentConfig)
class AgentConfigAdmin(admin.ModelAdmin):
    list_display = ("name", "role", "kind", "enabled", "max_concurrency", "updated_at")
    list_filter = ("kind", "enabled")
    search_fields = ("name", "role", "description")
    list_editable = ("enabled",)
