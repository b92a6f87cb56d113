"""``manage.py symphony token ...``: personal API tokens from a terminal.

symphony token create --user alice --expires 90 --name ci    # the raw token alone on stdout
symphony token list --user alice
symphony token revoke sym_ab12cd34
"""

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError

from executions.cli import Subcommand
from symphony.models import ApiToken
from symphony.tokens import TokenError, token_by_prefix, token_create, token_revoke, tokens_of


def _user(username: str):
    user = get_user_model().objects.filter(username=username).first()
    if user is None:
        raise CommandError(f"No user named {username!r}.")
    return user


def _when(moment) -> str:
    return moment.strftime("%Y-%m-%d %H:%M") if moment else "-"


def token_line(token: ApiToken) -> str:
    return "  ".join(
        [
            f"{token.prefix:<12}",
            f"{token.status():<7}",
            f"created {_when(token.created_at)}",
            f"expires {_when(token.expires_at):<16}",
            f"last used {_when(token.last_used_at):<16}",
            token.name,
        ]
    ).rstrip()


class TokenCommand(Subcommand):
    name = "token"
    help = "Create, list and revoke personal API tokens."

    def add_arguments(self, parser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        create = actions.add_parser("create", help="Create a token; only the token is printed on stdout, once.")
        create.add_argument("--user", required=True, help="The user the token acts as.")
        create.add_argument("--expires", type=int, metavar="DAYS", help="Days until it expires (default: never).")
        create.add_argument("--name", default="", help="What it is for.")
        listing = actions.add_parser("list", help="List a user's tokens (prefixes only; tokens are not stored).")
        listing.add_argument("--user", required=True)
        revoke = actions.add_parser("revoke", help="Revoke a token by its prefix, e.g. sym_ab12cd34.")
        revoke.add_argument("prefix")

    def handle(self, command, *, action, **options) -> None:
        getattr(self, f"do_{action}")(command, **options)

    def do_create(self, command, *, user, expires, name, **_) -> None:
        owner = _user(user)
        try:
            token, raw = token_create(user=owner, name=name, expires_days=expires)
        except TokenError as exc:
            raise CommandError(str(exc)) from None
        # stdout carries the token alone, so `TOKEN=$(manage.py symphony token create ...)` captures it.
        command.stdout.write(raw)
        expiry = f"expires {_when(token.expires_at)}" if token.expires_at else "does not expire"
        command.stderr.write(f"Token {token.prefix} for {owner.get_username()} ({expiry}); it is not shown again.")

    def do_list(self, command, *, user, **_) -> None:
        tokens = list(tokens_of(_user(user)))
        if not tokens:
            command.stderr.write(f"{user} has no tokens.")
        for token in tokens:
            command.stdout.write(token_line(token))

    def do_revoke(self, command, *, prefix, **_) -> None:
        token = token_by_prefix(prefix)
        if token is None:
            raise CommandError(f"No token with prefix {prefix!r}.")
        token = token_revoke(token=token)
        command.stdout.write(f"{token.prefix} of {token.user.get_username()} revoked at {_when(token.revoked_at)}.")
