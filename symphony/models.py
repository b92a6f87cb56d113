"""Personal API tokens: what a script presents instead of a session.

Only a hash of a token is stored; its first characters (``prefix``) stay
readable, so a person can tell their tokens apart and a request can find its
row without scanning. A token stops working when it expires or is revoked; the
row stays, so the list keeps showing when it was made and last used.
"""

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, blank=True, help_text="What it is for, as its owner named it.")
    # The raw token's beginning, "sym_" and 8 characters: shown in lists, and how a presented token finds its row.
    prefix = models.CharField(max_length=12, unique=True)
    # SHA-256 (hex) of the whole raw token: it holds 256 random bits, so a slow password hash would add nothing.
    secret_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # Written at most once a minute per token (symphony.tokens.user_for_token).
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})" if self.name else f"{self.prefix}…"

    def status(self, now: datetime | None = None) -> str:
        """ "revoked", "expired" or "active": why the token would be refused, or that it would not."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or timezone.now()):
            return "expired"
        return "active"
