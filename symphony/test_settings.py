"""The test suite's small override of symphony.settings: fast hashing, short timers."""

import os
import secrets

# The suite runs with DJANGO_DEBUG off, where settings refuse a missing or weak key.
os.environ["DJANGO_SECRET_KEY"] = "test-" + secrets.token_urlsafe(64)

from symphony.settings import *  # noqa: E402, F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SECURE_SSL_REDIRECT = False
SYMPHONY_PROGRESS_FLUSH_SECONDS = 0.05
SYMPHONY_HEARTBEAT_SECONDS = 0.2
SYMPHONY_CANCEL_GRACE_SECONDS = 1.0
SYMPHONY_RETRY_BACKOFF = 0.0
SYMPHONY_RELAY_INTERVAL = 0.05

if REDIS_URL:  # noqa: F405
    # Each run counts its own throttles: the Redis database outlives the run.
    CACHES["default"]["KEY_PREFIX"] = "test-" + secrets.token_hex(4)  # noqa: F405
SYMPHONY_API_RATE_PER_TOKEN = "100000/m"
SYMPHONY_API_RATE_PER_USER = "100000/m"
