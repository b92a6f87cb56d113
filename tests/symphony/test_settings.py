import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from symphony.settings import secret_key_weakness

ROOT = Path(__file__).resolve().parents[2]
STRONG_KEY = secrets.token_urlsafe(64)
GENERATE = 'python -c "import secrets; print(secrets.token_urlsafe(64))"'


def run(argv: list[str], env: dict) -> subprocess.CompletedProcess:
    """``argv`` in a fresh interpreter with production settings; a value of None in ``env`` unsets it."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "symphony.settings", "DJANGO_SECRET_KEY": STRONG_KEY}
    environment.update(env)
    environment = {key: value for key, value in environment.items() if value is not None}
    return subprocess.run(
        [sys.executable, *argv], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )


def manage(*args, **env) -> subprocess.CompletedProcess:
    return run(["manage.py", *args], env)


def test_sqlite_runs_in_wal_mode_with_immediate_transactions(tmp_path):
    result = manage(
        "shell",
        "-c",
        "from django.db import connection; c = connection.cursor(); c.execute('PRAGMA journal_mode');"
        "print(c.fetchone()[0], connection.settings_dict['OPTIONS']['transaction_mode'])",
        SYMPHONY_VAR_DIR=str(tmp_path),
        DATABASE_URL="",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["wal", "IMMEDIATE"]


@pytest.mark.parametrize(
    "key",
    [
        "changeme",
        "secret",
        "insecure",
        "CHANGEME",
        "changeme" * 8,
        "django-insecure-" + secrets.token_urlsafe(48),
        secrets.token_urlsafe(36)[:49],
        "abcd" * 20,
        "   ",
        "",
    ],
)
def test_a_missing_short_repetitive_or_default_key_is_weak(key):
    assert secret_key_weakness(key)


def test_a_generated_key_is_not_weak():
    assert secret_key_weakness(secrets.token_urlsafe(64)) is None
    assert secret_key_weakness("x7-" + "k" * 60 + "-Qz9") is None


@pytest.mark.parametrize(
    ("key", "why"),
    [
        (None, "DJANGO_SECRET_KEY is not set"),
        ("changeme", "DJANGO_SECRET_KEY is a well-known default"),
        ("s3cr3t-but-short", "DJANGO_SECRET_KEY has 16 characters; at least 50 are needed"),
    ],
)
def test_production_refuses_to_start_without_a_strong_key(tmp_path, key, why):
    result = manage("check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=key, SYMPHONY_VAR_DIR=str(tmp_path))

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert why in result.stderr
    assert GENERATE in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_the_web_server_refuses_a_weak_key_too(tmp_path):
    result = run(
        ["-c", "import symphony.asgi"],
        {"DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "changeme", "SYMPHONY_VAR_DIR": str(tmp_path)},
    )

    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY is a well-known default" in result.stderr


def test_production_starts_with_a_strong_key(tmp_path):
    result = manage("check", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=STRONG_KEY, SYMPHONY_VAR_DIR=str(tmp_path))

    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_development_generates_its_key_once_into_var(tmp_path):
    show_key = ["shell", "-c", "from django.conf import settings; print(settings.SECRET_KEY)"]
    first = manage(*show_key, DJANGO_DEBUG="1", DJANGO_SECRET_KEY=None, SYMPHONY_VAR_DIR=str(tmp_path))
    second = manage(*show_key, DJANGO_DEBUG="1", DJANGO_SECRET_KEY=None, SYMPHONY_VAR_DIR=str(tmp_path))

    assert first.returncode == 0, first.stderr
    key = (tmp_path / "secret_key").read_text().strip()
    assert first.stdout.split()[-1] == second.stdout.split()[-1] == key
    assert secret_key_weakness(key) is None


def test_a_redis_channel_layer_reads_longer_than_it_blocks_for_a_message():
    from channels.layers import get_channel_layer
    from channels_redis.core import RedisChannelLayer
    from django.conf import settings

    layer = get_channel_layer()
    if not isinstance(layer, RedisChannelLayer):
        assert not settings.REDIS_URL  # the embedded default: nothing blocks on Redis
        return
    connection = layer.create_pool(0).make_connection()
    assert connection.socket_timeout > layer.brpop_timeout


def test_a_schema_command_needs_no_key_but_a_weak_one_is_still_refused(tmp_path):
    keyless = manage("makemigrations", "--check", "--dry-run", DJANGO_DEBUG="0", DJANGO_SECRET_KEY=None,
                     SYMPHONY_VAR_DIR=str(tmp_path))  # fmt: skip
    weak = manage("makemigrations", "--check", "--dry-run", DJANGO_DEBUG="0", DJANGO_SECRET_KEY="changeme",
                  SYMPHONY_VAR_DIR=str(tmp_path))  # fmt: skip

    assert keyless.returncode == 0, keyless.stderr
    assert "No changes detected" in keyless.stdout
    assert weak.returncode != 0 and "well-known default" in weak.stderr
    assert not (tmp_path / "secret_key").exists()
