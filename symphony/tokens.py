"""Personal API tokens: create, revoke, and resolve a presented token to its user.

A raw token reads ``sym_<8 characters>_<43 characters>``: the first 12 are its
``prefix``, stored in the clear and unique, the rest 256 random bits. Only the
SHA-256 of the whole token is stored, so the raw token exists once, in
``token_create``'s answer. Nothing is cached: a revoked or expired token is
refused by the very next request.
"""

import hashlib
import hmac
import re
import secrets
import string
import unicodedata
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from symphony.models import ApiToken

TOKEN_START = "sym_"
PREFIX_CHARS = 8
PREFIX_ALPHABET = string.ascii_lowercase + string.digits
SECRET_BYTES = 32
# token_urlsafe(32) is 43 characters of the URL-safe base64 alphabet.
TOKEN_FORMAT = re.compile(r"sym_[a-z0-9]{8}_[A-Za-z0-9_-]{43}")
NAME_MAX_CHARS = ApiToken._meta.get_field("name").max_length
MAX_EXPIRES_DAYS = 3650
# A burst of API calls with one token writes last_used_at once, not once per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class TokenError(ValueError):
    """A token that cannot be created as asked; nothing was written."""


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def _clean_name(name: Any) -> str:
    if not isinstance(name, str):
        raise TokenError(f"A token's name must be text, not {type(name).__name__}.")
    name = name.strip()
    if len(name) > NAME_MAX_CHARS:
        raise TokenError(f"A token's name may be at most {NAME_MAX_CHARS} characters (got {len(name)}).")
    # Control characters (NUL above all: PostgreSQL cannot store it) and lone surrogates cannot be shown or stored.
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in name):
        raise TokenError("A token's name may not hold control characters.")
    return name


def _clean_expires_days(days: Any) -> int | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int):
        raise TokenError(f"Expiry must be a whole number of days, not {type(days).__name__}.")
    if not 1 <= days <= MAX_EXPIRES_DAYS:
        raise TokenError(f"Expiry must be between 1 and {MAX_EXPIRES_DAYS} days (got {days}); omit it for none.")
    return days


def token_create(*, user: AbstractBaseUser, name: str = "", expires_days: int | None = None) -> tuple[ApiToken, str]:
    """A new token for ``user`` and its raw value, which is returned here once and never stored."""
    name = _clean_name(name)
    expires_days = _clean_expires_days(expires_days)
    if user is None or user.pk is None:
        raise TokenError("A token needs a saved user.")
    now = timezone.now()
    expires_at = now + timedelta(days=expires_days) if expires_days else None
    # 36**8 prefixes: a clash is rare, and the unique index turns one into another draw.
    for _ in range(5):
        prefix = TOKEN_START + "".join(secrets.choice(PREFIX_ALPHABET) for _ in range(PREFIX_CHARS))
        raw = f"{prefix}_{secrets.token_urlsafe(SECRET_BYTES)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user, name=name, prefix=prefix, secret_hash=_hash(raw), created_at=now, expires_at=expires_at
                )
        except IntegrityError:
            if ApiToken.objects.filter(prefix=prefix).exists():
                continue
            raise
        return token, raw
    raise RuntimeError("Could not draw an unused token prefix in five tries.")


def token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke ``token`` for good; revoking it again keeps the first revocation's time."""
    ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=timezone.now())
    token.refresh_from_db(fields=["revoked_at"])
    return token


def user_for_token(raw: str) -> AbstractBaseUser | None:
    """The active user a presented token belongs to, or None if it is malformed, unknown, expired or revoked."""
    if not isinstance(raw, str) or not TOKEN_FORMAT.fullmatch(raw):
        return None
    token = ApiToken.objects.select_related("user").filter(prefix=raw[: len(TOKEN_START) + PREFIX_CHARS]).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _hash(raw)):
        return None
    now = timezone.now()
    if token.status(now) != "active" or not token.user.is_active:
        return None
    if token.last_used_at is None or token.last_used_at <= now - LAST_USED_RESOLUTION:
        # Compare-and-set: of concurrent requests, one writes; the others match no row.
        stale = Q(last_used_at__isnull=True) | Q(last_used_at__lte=now - LAST_USED_RESOLUTION)
        ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now)
    return token.user


def bearer_token(header_value: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer <token>`` header (the scheme in any case), else None."""
    if not header_value:
        return None
    scheme, _, credentials = header_value.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip() or None


# Reads ----------------------------------------------------------------------------------


def tokens_of(user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """``user``'s tokens, newest first, revoked and expired ones included."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def token_by_prefix(prefix: str) -> ApiToken | None:
    """The token a prefix names, written as shown (``sym_ab12cd34``) or without ``sym_``."""
    prefix = prefix.strip()
    if not prefix.startswith(TOKEN_START):
        prefix = TOKEN_START + prefix
    return ApiToken.objects.select_related("user").filter(prefix=prefix).first()
