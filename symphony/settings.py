"""Symphony settings: everything comes from the environment, with embedded defaults.

The defaults give a one-machine install with no services: SQLite (WAL, IMMEDIATE
transactions), django-q2's ORM broker and an in-memory channel layer relayed
from the database. ``DATABASE_URL`` and ``REDIS_URL`` switch to PostgreSQL and
Redis for scale-out.
"""

import os
import secrets
import sys
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("SYMPHONY_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value else default


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name)
    if not value:
        return default
    return [item.strip() for item in value.split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)


GENERATE_SECRET_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(64))"'
# Keys people leave in place from examples and tutorials, refused even when repeated to length.
KNOWN_DEFAULT_SECRET_KEYS = (
    "changeme", "change-me", "change_me", "secret", "secretkey", "secret-key", "secret_key", "insecure",
    "django-insecure", "password", "default", "development", "dev", "test", "example", "symphony", "x",
)  # fmt: skip


def secret_key_weakness(key: str) -> str | None:
    """Why ``key`` must not sign production sessions, or None: Django's own deploy check, plus known defaults."""
    if not key.strip():
        return "DJANGO_SECRET_KEY is not set"
    lowered = key.strip().lower()
    if any(lowered == default * (len(lowered) // len(default)) for default in KNOWN_DEFAULT_SECRET_KEYS):
        return "DJANGO_SECRET_KEY is a well-known default"
    if key.startswith("django-insecure-"):
        return "DJANGO_SECRET_KEY starts with 'django-insecure-', the mark of a development key"
    if len(key) < 50:
        return f"DJANGO_SECRET_KEY has {len(key)} characters; at least 50 are needed"
    if len(set(key)) < 5:
        return f"DJANGO_SECRET_KEY has {len(set(key))} distinct characters; at least 5 are needed"
    return None


# Commands that sign nothing: they may run with no key at all (a key of their own, thrown
# away), so a schema check such as ``makemigrations --check`` needs no production secret.
KEYLESS_COMMANDS = frozenset({"makemigrations", "migrate", "showmigrations", "sqlmigrate"})


def _keyless_command() -> bool:
    program = os.path.basename(sys.argv[0]) if sys.argv else ""
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    return program in ("manage.py", "django-admin", "__main__.py") and command in KEYLESS_COMMANDS


def _secret_key() -> str:
    """Production needs a strong DJANGO_SECRET_KEY; a development install keeps a generated one in var/."""
    key = os.environ.get("DJANGO_SECRET_KEY", "")
    if not DEBUG and not key and _keyless_command():
        return secrets.token_urlsafe(64)
    if not DEBUG:
        weakness = secret_key_weakness(key)
        if weakness:
            raise ImproperlyConfigured(
                f"Refusing to start with DJANGO_DEBUG off: {weakness}. Sessions, CSRF tokens and the "
                f"workers' messages are signed with it. Generate one with\n    {GENERATE_SECRET_KEY}\n"
                "and set it as DJANGO_SECRET_KEY (or set DJANGO_DEBUG=1 for development)."
            )
        return key
    if key:
        return key
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "channels",
    "django_q",
    "django_htmx",
    "template_partials",
    "ninja",  # its static files: the API docs page loads Swagger UI from here, not from a CDN
    "routing",
    "executions",
    "workflows",
    # The top layer (API tokens, the JSON API): it may import every app listed before it.
    "symphony",
]

MIDDLEWARE = [
    # First, so it sees every answer: an error under /api/v1/ that is not yet a problem becomes one.
    "symphony.problems.ProblemResponses",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    # Last, so it sees the login view's answer and turns a refused login into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "symphony.urls"
WSGI_APPLICATION = "symphony.wsgi.application"
ASGI_APPLICATION = "symphony.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database ------------------------------------------------------------------

DATABASE_URL = os.environ.get("DATABASE_URL", "")
SQLITE_PATH = Path(os.environ.get("SYMPHONY_SQLITE_PATH", VAR_DIR / "symphony.sqlite3"))

if DATABASE_URL:
    # Workers call the broker and the database constantly: keep connections open
    # (CONN_MAX_AGE=0 costs a connection per call, measured at 25 tasks/s instead of 307).
    DATABASES = {
        "default": dj_database_url.parse(
            DATABASE_URL,
            conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 600),
            conn_health_checks=True,
        )
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": SQLITE_PATH,
            "OPTIONS": {
                # IMMEDIATE takes the write lock at BEGIN, so concurrent writers queue
                # on busy_timeout instead of failing with "database is locked" on upgrade.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            },
            "TEST": {"NAME": VAR_DIR / "test_symphony.sqlite3"},
            # django-q2's broker checks connections on every call; reopening the
            # file (and re-running the PRAGMAs) each time is wasted work.
            "CONN_MAX_AGE": env_int("DATABASE_CONN_MAX_AGE", 600),
        }
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis: channel layer and django-q2 broker ------------------------------------

REDIS_URL = os.environ.get("REDIS_URL", "")

if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                # redis-py's async pool stops at 100 connections by default, which
                # 200 websocket clients joining at once exceed.
                # redis-py 8 reads with a 5 s socket timeout by default, and channels_redis blocks
                # up to 5 s waiting for a message (BZPOPMIN): on a busy machine an idle listener
                # then fails with "Timeout reading" and drops its hints. Read longer than it blocks.
                "hosts": [{"address": REDIS_URL, "max_connections": 1000, "socket_timeout": 30}],
                # The default capacity of 100 silently drops bursts; pushes are hints
                # and clients replay from the event table, but keep drops rare.
                "capacity": 5000,
                "expiry": 30,
            },
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# The cache holds the API's throttle counts: shared by every web process through Redis.
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": os.environ.get("SYMPHONY_CACHE_PREFIX", "symphony"),
        }
    }

# Executions ------------------------------------------------------------------

SYMPHONY_DEFAULT_TIMEOUT = env_float("SYMPHONY_DEFAULT_TIMEOUT", 300.0)
SYMPHONY_MAX_TIMEOUT = env_float("SYMPHONY_MAX_TIMEOUT", 3600.0)
SYMPHONY_DEFAULT_MAX_ATTEMPTS = env_int("SYMPHONY_DEFAULT_MAX_ATTEMPTS", 3)
# What a submit may ask for (executions/validation.py); beyond these it is refused, naming the field.
SYMPHONY_MAX_ATTEMPTS_LIMIT = env_int("SYMPHONY_MAX_ATTEMPTS_LIMIT", 100)
# Well inside the 32-bit integer column on both databases.
SYMPHONY_MIN_PRIORITY = env_int("SYMPHONY_MIN_PRIORITY", -1_000_000)
SYMPHONY_MAX_PRIORITY = env_int("SYMPHONY_MAX_PRIORITY", 1_000_000)
SYMPHONY_MAX_JSON_DEPTH = env_int("SYMPHONY_MAX_JSON_DEPTH", 64)
SYMPHONY_MAX_INPUT_BYTES = env_int("SYMPHONY_MAX_INPUT_BYTES", 1_000_000)
SYMPHONY_RETRY_BACKOFF = env_float("SYMPHONY_RETRY_BACKOFF", 1.0)
SYMPHONY_LEASE_SECONDS = env_float("SYMPHONY_LEASE_SECONDS", 30.0)
SYMPHONY_HEARTBEAT_SECONDS = env_float("SYMPHONY_HEARTBEAT_SECONDS", 2.0)
SYMPHONY_PROGRESS_FLUSH_SECONDS = env_float("SYMPHONY_PROGRESS_FLUSH_SECONDS", 0.25)
SYMPHONY_CANCEL_GRACE_SECONDS = env_float("SYMPHONY_CANCEL_GRACE_SECONDS", 5.0)
# On SIGTERM/Ctrl-C a worker stops claiming; what it runs gets this long to finish before
# it is stopped and put back in the queue with its attempt not counted.
SYMPHONY_STOP_GRACE_SECONDS = env_float("SYMPHONY_STOP_GRACE_SECONDS", 10.0)
# Workflow definitions: at most this many steps (validation and scheduling are linear in it).
SYMPHONY_MAX_WORKFLOW_STEPS = env_int("SYMPHONY_MAX_WORKFLOW_STEPS", 20_000)
# Callables (dotted paths) run on the worker around every agent call: pre(ctx), post(ctx, result).
SYMPHONY_AGENT_HOOKS = {
    "pre": env_list("SYMPHONY_AGENT_PRE_HOOKS", []),
    "post": env_list("SYMPHONY_AGENT_POST_HOOKS", []),
}
# How long a worker keeps trying to record an execution's end while the database is away.
SYMPHONY_DATABASE_RETRY_SECONDS = env_float("SYMPHONY_DATABASE_RETRY_SECONDS", 300.0)
SYMPHONY_MAX_RESULT_BYTES = env_int("SYMPHONY_MAX_RESULT_BYTES", 1_000_000)
SYMPHONY_DISPATCH_INTERVAL = env_float("SYMPHONY_DISPATCH_INTERVAL", 1.0)
# How often a dispatcher rolls up ended executions for the overview, agents page and /metrics.
SYMPHONY_ROLLUP_SECONDS = env_float("SYMPHONY_ROLLUP_SECONDS", 5.0)
# /metrics answers without credentials (for a Prometheus on a private network); otherwise it needs
# an operator's or staff member's session or API token.
SYMPHONY_METRICS_PUBLIC = env_bool("SYMPHONY_METRICS_PUBLIC", False)
# Workers claim from the execution table; a broker message only wakes one. This many
# waiting wake-ups are enough: each woken worker drains everything ready.
SYMPHONY_WAKEUPS = env_int("SYMPHONY_WAKEUPS", 2)
# A woken worker stops claiming after this long and hands back to django-q2 (a fresh
# wake-up continues), so recycling and shutdown stay prompt.
SYMPHONY_DRAIN_SECONDS = env_float("SYMPHONY_DRAIN_SECONDS", 10.0)
# Executions one worker process runs at once: async agents share its event loop, sync
# agents get a thread each. Agents mostly wait on the network, so this is not the CPU count
# (Hatchet's workers default to 100 slots too). 1,000 one-second async agents on the default
# 4 workers: 6.1 s with 50 slots, 3.9 s with 100, 3.1 s with 250 (bench/README.md).
SYMPHONY_SLOTS = env_int("SYMPHONY_SLOTS", 100)
# Routing: round_robin, capability_match, content_match, load_balanced or custom.
# The JSON API's throttles: requests per token, and per user over all their tokens and the session
# ("N/s", "N/m", "N/h" or "N/d"). Counted in the cache: Redis when REDIS_URL is set, else each process's memory.
SYMPHONY_API_RATE_PER_TOKEN = os.environ.get("SYMPHONY_API_RATE_PER_TOKEN", "600/m")
SYMPHONY_API_RATE_PER_USER = os.environ.get("SYMPHONY_API_RATE_PER_USER", "1200/m")
SYMPHONY_ROUTING_STRATEGY = os.environ.get("SYMPHONY_ROUTING_STRATEGY", "content_match")
SYMPHONY_CUSTOM_ROUTER = os.environ.get("SYMPHONY_CUSTOM_ROUTER", "")
# Content match's relevance model: "semantic" (meaning, from the packaged MiniLM encoder, blended with
# words) or "lexical" (shared words only). Semantic falls back to lexical when the model is not installed.
SYMPHONY_RELEVANCE = os.environ.get("SYMPHONY_RELEVANCE", "semantic")
# The score below which content match says "nothing here fits"; empty: the model's calibrated default.
SYMPHONY_ROUTING_MIN_SCORE = env_float("SYMPHONY_ROUTING_MIN_SCORE", None)
# Worker processes cannot reach an in-memory channel layer, so the web process
# relays committed events from the database. A shared layer (Redis) needs no relay.
SYMPHONY_EVENT_RELAY = env_bool("SYMPHONY_EVENT_RELAY", not REDIS_URL)
SYMPHONY_RELAY_INTERVAL = env_float("SYMPHONY_RELAY_INTERVAL", 0.1)
# On SQLite the relay polls the table only when the file's change counter moved, asked this often.
SYMPHONY_RELAY_WAKE_INTERVAL = env_float("SYMPHONY_RELAY_WAKE_INTERVAL", 0.005)

# One django-q2 task drains for SYMPHONY_DRAIN_SECONDS, then runs its last execution to the end.
_q_timeout = int(SYMPHONY_DRAIN_SECONDS + SYMPHONY_MAX_TIMEOUT + SYMPHONY_CANCEL_GRACE_SECONDS + 60)
Q_CLUSTER = {
    "name": os.environ.get("SYMPHONY_Q_CLUSTER_NAME", "symphony"),
    "workers": env_int("SYMPHONY_WORKERS", 4),
    # Long agent runs: prefetch little, so a draining worker does not sit on work.
    "queue_limit": env_int("SYMPHONY_QUEUE_LIMIT", 8),
    "recycle": 500,
    "timeout": _q_timeout,
    # retry must exceed timeout, or the ORM broker re-delivers a task still running.
    "retry": _q_timeout + 60,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": -1,
    "catch_up": False,
    "poll": env_float("SYMPHONY_BROKER_POLL", 0.01),
    "label": "Workers",
    # INFO logs a line per enqueued and per processed task: noise at any volume.
    "log_level": os.environ.get("SYMPHONY_QUEUE_LOG_LEVEL", "WARNING"),
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# Auth, static, i18n -------------------------------------------------------------

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Login throttling (django-axes): after SYMPHONY_LOGIN_FAILURE_LIMIT wrong passwords for one username
# from one address, that pair is refused, the right password included, until SYMPHONY_LOGIN_COOLOFF_MINUTES
# pass without a further try; a success clears the count. Keyed on the pair, so guessing from one
# address stops while nobody elsewhere can lock a user out by typing wrong passwords for them.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("SYMPHONY_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_float("SYMPHONY_LOGIN_COOLOFF_MINUTES", 15.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "symphony.lockout.locked_out_page"
# The address is REMOTE_ADDR: behind a reverse proxy, run daphne with --proxy-headers.
AXES_VERBOSE = False  # no banner from every manage.py command
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "executions:list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
WHITENOISE_USE_FINDERS = True

# Production hardening: on whenever DEBUG is off, so `check --deploy` passes.
if not DEBUG:
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = env_int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", True)
# Behind a reverse proxy that ends TLS, a request is secure when the proxy says so in X-Forwarded-Proto.
# Only a proxy that sets that header itself (overwriting a client's) may be trusted with it: without one,
# any client could send it and pass for HTTPS, so it is trusted only when DJANGO_BEHIND_PROXY says so.
if env_bool("DJANGO_BEHIND_PROXY", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# INFO says what happened to executions (a line as each starts and ends) and to the processes; nothing
# per poll or per wake-up. SYMPHONY_LOG_FORMAT=json writes one JSON object per line instead of text.
SYMPHONY_LOG_FORMAT = os.environ.get("SYMPHONY_LOG_FORMAT", "text").lower()
if SYMPHONY_LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"SYMPHONY_LOG_FORMAT must be text or json, not {SYMPHONY_LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "symphony.log_format.JsonFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": SYMPHONY_LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": os.environ.get("SYMPHONY_LOG_LEVEL", "INFO")},
    "loggers": {
        "django.channels.server": {"level": "WARNING"},
        # axes' INFO is a line or two per login attempt; its warnings say who failed and who is locked out.
        "axes": {"level": "WARNING"},
        # django-q2 applies its log_level only when no handler is configured, which ours is: set it here,
        # or every CLI command prints "Enqueued [symphony] N" and the worker a line per wake-up.
        "django-q": {"level": Q_CLUSTER["log_level"]},
    },
}

SYMPHONY_ADMIN_PASSWORD = os.environ.get("SYMPHONY_ADMIN_PASSWORD", "")
