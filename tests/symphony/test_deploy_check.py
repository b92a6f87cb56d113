"""The production settings documented in the README pass ``check --deploy`` with nothing to report.

Each case runs manage.py in a fresh interpreter, since the settings read the
environment once, at import.
"""

import json

import pytest

from tests.symphony.test_settings import manage

PRODUCTION = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "x7-" + "k" * 60 + "-Qz9",
    "DJANGO_ALLOWED_HOSTS": "symphony.example.com",
    "DJANGO_BEHIND_PROXY": None,
    "DJANGO_SECURE_SSL_REDIRECT": None,
    "DJANGO_SECURE_COOKIES": None,
    "DJANGO_SECURE_HSTS_SECONDS": None,
}
SHOWN = (
    "SECURE_PROXY_SSL_HEADER", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE", "DEBUG",
)  # fmt: skip


def production_settings(tmp_path, **env) -> dict:
    code = "import json; from django.conf import settings as s; print(json.dumps({n: getattr(s, n) for n in %r}))"
    code %= (SHOWN,)
    result = manage("shell", "-c", code, SYMPHONY_VAR_DIR=str(tmp_path), **{**PRODUCTION, **env})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("proxy", [None, "1"], ids=["direct", "behind-a-proxy"])
def test_check_deploy_reports_nothing(tmp_path, proxy):
    result = manage(
        "check", "--deploy", "--fail-level", "DEBUG",
        SYMPHONY_VAR_DIR=str(tmp_path), **{**PRODUCTION, "DJANGO_BEHIND_PROXY": proxy},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_production_is_https_only_with_hsts_and_secure_cookies(tmp_path):
    shown = production_settings(tmp_path)
    assert shown["DEBUG"] is False and shown["SECURE_SSL_REDIRECT"] is True
    assert shown["SECURE_HSTS_SECONDS"] >= 31536000
    assert shown["SESSION_COOKIE_SECURE"] is True and shown["CSRF_COOKIE_SECURE"] is True


def test_x_forwarded_proto_is_trusted_only_when_a_proxy_is_declared(tmp_path):
    # Without a proxy that overwrites it, any client could send the header and pass for HTTPS.
    assert production_settings(tmp_path)["SECURE_PROXY_SSL_HEADER"] is None
    behind = production_settings(tmp_path, DJANGO_BEHIND_PROXY="1")
    assert behind["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
