"""Admin for API tokens: see who holds which and when each was last used; revoke them.

Tokens are created by their owners (the tokens page, ``symphony token create``),
so the admin adds none and never shows a token's hash.
"""

from django.contrib import admin, messages

from symphony.models import ApiToken
from symphony.tokens import token_revoke


@admin.action(description="Revoke selected tokens")
def revoke_tokens(modeladmin, request, queryset):
    tokens = list(queryset)
    for token in tokens:
        token_revoke(token=token)
    modeladmin.message_user(request, f"Revoked {len(tokens)} token(s).", messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "created_at", "expires_at", "last_used_at", "revoked_at")
    list_filter = ("created_at", "revoked_at")
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    date_hierarchy = "created_at"
    actions = [revoke_tokens]
    fields = ("prefix", "name", "user", "created_at", "expires_at", "last_used_at", "revoked_at")
    readonly_fields = fields

    def has_add_permission(self, request) -> bool:
        return False  # a token is created by its user, who alone sees it once
