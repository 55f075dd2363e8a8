"""Signoff settings: one module, environment-driven, safe development defaults.

Development (and `make run`) uses SQLite and the filesystem broker under var/. Production sets
DATABASE_URL, REDIS_URL, SECRET_KEY, ALLOWED_HOSTS and the ledger key; with DEBUG off, a missing
secret fails at start-up instead of running with a guessable one.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import dj_database_url
from celery.schedules import crontab
from csp.constants import NONE as CSP_NONE
from csp.constants import SELF as CSP_SELF
from django.contrib.messages import constants as message_constants
from django.core.exceptions import ImproperlyConfigured
from dotenv import load_dotenv

from config import logs, queues
from config.env import (
    DEVELOPMENT_ENV_HINT,
    development_env_file,
    env_bool,
    env_int,
    env_list,
    env_secret,
    env_str,
    require_strong_secret,
)

BASE_DIR = Path(__file__).resolve().parent.parent
# pytest-xdist's workers run as `python -c`: they are known by the variable xdist sets.
XDIST_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
TESTING = "pytest" in Path(sys.argv[0]).name or sys.argv[1:2] == ["test"] or bool(XDIST_WORKER)
_env_file = development_env_file()
if not TESTING:
    # Development: `make run` writes a git-ignored .env (bin/dev-env) so that every manage.py
    # command works in any terminal. Real environment variables win; production has no .env;
    # the test suite never reads it, so it runs the same on every machine.
    load_dotenv(_env_file, override=False)
VAR_DIR = Path(env_str("SIGNOFF_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DEBUG", False)

SECRET_KEY = env_secret("SECRET_KEY")
if DEBUG or TESTING:
    SECRET_KEY = SECRET_KEY or "insecure-development-key-do-not-use-in-production"
else:
    # A placeholder or short key lets anyone forge sessions and password-reset links: refuse it.
    # A fresh clone's first manage.py command (before `make run` wrote .env) lands here too.
    SECRET_KEY = require_strong_secret(
        "SECRET_KEY",
        SECRET_KEY,
        hint="" if SECRET_KEY or _env_file.exists() else DEVELOPMENT_ENV_HINT,
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if DEBUG or TESTING else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
SITE_URL = env_str("SITE_URL", "http://localhost:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_filters",
    "guardian",
    "auditlog",
    # Before axes: its reset commands are replaced by ledgered ones (governance/management/).
    "governance",
    "axes",
    "crispy_forms",
    "crispy_bootstrap5",
    "django_htmx",
    "csp",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "pgtrigger",
    "django_scim",
    "changes",
    "approvals",
    "reporting",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "governance.middleware.CorrelationIdMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    # Last: turns a sign-in that django-axes refused into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "governance.context_processors.navigation",
                "governance.context_processors.sign_in",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'signoff.sqlite3'}"),
        # Persistent connections: opening one per request would cost more than most queries.
        conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60),
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default lives under var/: make sure the folder exists before SQLite opens it.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
    # Several processes (web, worker, beat) share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    # SQLite cannot build the "nulls not distinct" unique constraint on role grants; the grant
    # service finds an existing grant before creating one, so the quick start loses nothing.
    SILENCED_SYSTEM_CHECKS = ["models.W047"]
elif DATABASES["default"]["ENGINE"].endswith("postgresql") and env_bool("DATABASE_POOL", True):
    # PostgreSQL: one bounded pool per process (Django 5.2 + psycopg_pool) instead of one
    # persistent connection per thread, which the threaded dev server and threaded workers leave
    # idle until PostgreSQL refuses clients. A request beyond max_size waits up to `timeout`
    # seconds for a free connection. DATABASE_POOL=false behind PgBouncer (transaction mode).
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # the pool keeps the connections, not each thread
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env_int("DATABASE_POOL_MIN_SIZE", 1),
        "max_size": env_int("DATABASE_POOL_MAX_SIZE", 10),
        # Short: web threads (WEB_THREADS) never outnumber max_size, so only an unreachable
        # database makes a request wait here, and it should get its 503 quickly.
        "timeout": env_int("DATABASE_POOL_TIMEOUT", 3),
    }
    # Pooled connections live long: bind parameters on the server, so that the gate's queries
    # can be prepared once per connection (governance/db.py). Needs a real session, hence only
    # with the pool.
    if env_bool("DATABASE_PREPARED_STATEMENTS", True):
        DATABASES["default"]["OPTIONS"]["server_side_binding"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "governance.User"
AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username or address is refused before any password (or OIDC code)
    # is checked. The standalone backend only refuses: ModelBackend below still signs people in
    # and answers permission checks once.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
    "governance.identity.oidc.SignoffOIDCBackend",
]

# OpenID Connect sign-in (Okta, Entra ID): on when OIDC_RP_CLIENT_ID is set. See the README.
OIDC_RP_CLIENT_ID = env_str("OIDC_RP_CLIENT_ID")
OIDC_RP_CLIENT_SECRET = env_secret("OIDC_RP_CLIENT_SECRET") or ""
OIDC_OP_AUTHORIZATION_ENDPOINT = env_str("OIDC_OP_AUTHORIZATION_ENDPOINT")
OIDC_OP_TOKEN_ENDPOINT = env_str("OIDC_OP_TOKEN_ENDPOINT")
OIDC_OP_USER_ENDPOINT = env_str("OIDC_OP_USER_ENDPOINT")
OIDC_OP_JWKS_ENDPOINT = env_str("OIDC_OP_JWKS_ENDPOINT")
OIDC_RP_SIGN_ALGO = env_str("OIDC_RP_SIGN_ALGO", "RS256")
OIDC_RP_SCOPES = env_str("OIDC_RP_SCOPES", "openid email profile")
OIDC_CREATE_USER = env_bool("OIDC_CREATE_USER", False)  # SCIM provisions people
OIDC_USE_PKCE = True
OIDC_TIMEOUT = 10
OIDC_PROVIDER_NAME = env_str("OIDC_PROVIDER_NAME", "single sign-on")
LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
if TESTING:
    # Hashing cost is for attackers, not for test suites.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "login"

# Sign-in lockout (django-axes): AXES_FAILURE_LIMIT failed sign-ins for one username, or from one
# client address, lock sign-in for that username or address (either is enough) for
# AXES_COOLOFF_MINUTES; 0 means until an administrator unlocks it on /governance/lockouts/.
# The local form, the Django admin and OIDC callbacks are all covered. Lockouts and unlocks are
# ledgered (governance.identity.lockouts).
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5)
_COOLOFF_MINUTES = env_int("AXES_COOLOFF_MINUTES", 15)
if _COOLOFF_MINUTES < 0 or AXES_FAILURE_LIMIT < 1:
    raise ImproperlyConfigured("AXES_COOLOFF_MINUTES must be >= 0 and AXES_FAILURE_LIMIT >= 1")
AXES_COOLOFF_TIME = timedelta(minutes=_COOLOFF_MINUTES) if _COOLOFF_MINUTES else None
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# A refused attempt during a lockout is not counted, so the lockout ends at a fixed time the
# lockout page can name, and hammering a locked account writes nothing.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "governance.identity.views.locked_out"
AXES_CLIENT_IP_CALLABLE = "governance.identity.authentication.client_ip"
# Unlocking goes through the ledgered page, not through django-axes' own admin pages.
AXES_ENABLE_ADMIN = False
# No start-up banner: commands such as `TOKEN=$(manage.py issue_token ...)` print only their answer.
AXES_VERBOSE = False
# Reverse proxies in front of Signoff that append the client's address to X-Forwarded-For
# (1 behind one nginx/ingress). 0 trusts no header: REMOTE_ADDR is the client.
SIGNOFF_TRUSTED_PROXIES = env_int("SIGNOFF_TRUSTED_PROXIES", 0)
# Failed `Authorization: Bearer` attempts per client address before the API answers 429 for
# API_TOKEN_FAILURE_WINDOW_SECONDS (counted in the cache below).
API_TOKEN_FAILURE_LIMIT = env_int("API_TOKEN_FAILURE_LIMIT", 20)
API_TOKEN_FAILURE_WINDOW_SECONDS = env_int("API_TOKEN_FAILURE_WINDOW_SECONDS", 300)

# guardian would otherwise create an AnonymousUser row that SCIM then lists as a person.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
# Reports written in the background (long compliance periods): web and worker must share it.
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Pipelines send small JSON documents; a huge body is refused before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 1024 * 1024)

CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"
# Bootstrap calls its error style "danger": without this, messages.error() shows uncoloured.
MESSAGE_TAGS = {message_constants.ERROR: "danger"}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "governance.identity.authentication.BearerTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["governance.api.parsers.SafeJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "governance.api.errors.exception_handler",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Signoff API",
    "DESCRIPTION": "Release-approval gate for pipelines: request approval, add evidence, "
    "ask the gate, record decisions.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI served from our own static files (drf-spectacular-sidecar), never a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The auditors' exports are plain Django views (streamed files): added to the schema here.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # 401/429 on every API operation, 400/413/415 where a body is read; before the report
        # paths, which document their own errors.
        "governance.api.openapi.add_common_errors",
        "reporting.openapi.add_report_paths",
    ],
    # Every choice field's enum has a name of its own, not one derived from the field's name
    # (which changes when a second serializer uses the same field name with other choices).
    "ENUM_NAME_OVERRIDES": {
        "ApprovalStatusEnum": "approvals.models.ApprovalRequest.Status",
        "ChangeCloseCodeEnum": "changes.records.models.ChangeRecord.CloseCode",
        "ChangeLevelEnum": "changes.records.models.ChangeRecord.Level",
        "ChangeStateEnum": "changes.records.models.ChangeRecord.State",
        "ChangeSourceEnum": "changes.records.models.ChangeRecord.Source",
        "ChangeTypeEnum": "changes.records.models.ChangeRecord.Type",
        "CheckAnswerEnum": "approvals.pipelines.ci_views.CHECK_ANSWERS",
        "CheckStatusEnum": "approvals.pipelines.ci_views.CHECK_STATUSES",
        "DecisionEnum": "approvals.models.Decision.Verdict",
        "DeploymentStatusEnum": "approvals.models.Deployment.Status",
        "DeploymentVerificationEnum": "approvals.models.Deployment.Verification",
        "EmergencyReviewEnum": "approvals.emergencies.models.EmergencyException.Review",
        "EvidenceStatusEnum": "approvals.api.serializers.EVIDENCE_STATUSES",
        "GateStatusEnum": "approvals.api.serializers.GATE_STATUSES",
        "HealthCheckSourceEnum": "approvals.verification.models.HealthCheck.Source",
        "IncidentSourceEnum": "changes.incidents.models.Incident.Source",
        "IncidentStatusEnum": "changes.incidents.models.Incident.Status",
        "IncidentUrgencyEnum": "changes.incidents.models.Incident.Urgency",
        "PlanArtifactEnum": "approvals.api.infrastructure.PLAN_ARTIFACTS",
        "StageStatusEnum": "approvals.models.ApprovalStage.Status",
    },
}

# Celery: Redis when REDIS_URL is set, otherwise the embedded filesystem broker under var/.
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL and XDIST_WORKER:
    # Each parallel test worker gets a Redis database of its own (the next ones after the given
    # one), so that one worker's broker queues and counters never meet another's. Exported, so
    # that the processes a test starts (a Celery worker, gunicorn) use the same one.
    _redis = urlsplit(REDIS_URL)
    _db = int(_redis.path.strip("/") or 0) + 1 + int(XDIST_WORKER.removeprefix("gw"))
    REDIS_URL = os.environ["REDIS_URL"] = _redis._replace(path=f"/{_db}").geturl()
CELERY_BROKER_DIR = VAR_DIR / "broker"
CELERY_VISIBILITY_TIMEOUT = env_int("CELERY_VISIBILITY_TIMEOUT", 3600)
if REDIS_URL:
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # A Redis outage fails a send within seconds instead of hanging its sender: connect within
    # 2 s, one retry. Notifications wait in the outbox for beat's sweep meanwhile.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
        "max_retries": 1,
        "interval_start": 0,
        "interval_step": 0.5,
        "interval_max": 1,
        # A task is acknowledged when it ends (acks_late below): one whose worker died is handed
        # out again once it has been unacknowledged this long. Longer than the longest task (a
        # whole-ledger verification or a long export: minutes), or a task still running would
        # be started a second time. Workers look for such tasks every
        # unacked_restore_interval seconds. docs/workers.md explains the trade-off.
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT,
        "unacked_restore_interval": max(1, min(10, CELERY_VISIBILITY_TIMEOUT // 2)),
        "unacked_restore_throttle": 1,
    }
    CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2
    CELERY_REDIS_SOCKET_TIMEOUT = 10
else:
    # A hostname, though the folders below are what count: kombu warns on every start without.
    CELERY_BROKER_URL = "filesystem://localhost/"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_BROKER_DIR / "queue"),
        "data_folder_out": str(CELERY_BROKER_DIR / "queue"),
        "processed_folder": str(CELERY_BROKER_DIR / "processed"),
        "control_folder": str(CELERY_BROKER_DIR / "control"),
        "store_processed": False,
        "polling_interval": 0.1,
    }
    CELERY_RESULT_BACKEND = f"file://{CELERY_BROKER_DIR / 'results'}"
    # The folders must exist before anything sends a task: seeding the demo before the worker
    # has started, or a manage.py command in another terminal.
    for _folder in ("queue", "processed", "control", "results"):
        (CELERY_BROKER_DIR / _folder).mkdir(parents=True, exist_ok=True)
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# The worker keeps trying to reach a broker that is not up yet, rather than exiting.
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Queues by kind of work; every task is routed (config/queues.py, docs/workers.md).
CELERY_TASK_DEFAULT_QUEUE = queues.DEFAULT
CELERY_TASK_ROUTES = queues.ROUTES
# Acknowledged when done, not when received: a worker killed mid-task loses nothing, the task
# runs again elsewhere, and every task claims its work so that a second run does it once.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# One task reserved per process: a long report never holds back others queued behind it.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1

# Cache: holds the failed-token counters. Redis when REDIS_URL is set, shared by every web
# process. Without it each process keeps its own counters in memory, which is enough for the
# quick start: only the web process counts (workers never authenticate API requests).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "signoff",
            # An outage costs a request one second at most (the token throttle then fails open).
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "signoff",
        }
    }

CELERY_BEAT_SCHEDULE = {
    # Whole-ledger verification every night; a failure notifies administrators and auditors.
    "verify-ledger-nightly": {
        "task": "governance.tasks.verify_ledger_nightly_task",
        "schedule": crontab(minute=30, hour=2),
    },
    "expire-approval-requests": {
        "task": "approvals.tasks.expire_requests_task",
        "schedule": 300.0,
    },
    "reresolve-open-stages": {
        "task": "approvals.tasks.reresolve_open_stages_task",
        "schedule": 120.0,
    },
    # Chasing open stages: reminders before they are due, the CAB once they are overdue.
    "remind-due-stages": {"task": "approvals.tasks.remind_due_stages_task", "schedule": 300.0},
    "escalate-overdue-stages": {
        "task": "approvals.tasks.escalate_overdue_stages_task",
        "schedule": 300.0,
    },
    # CAB meetings materialised four weeks ahead; agendas built from the CAB queue.
    "prepare-cab-meetings": {
        "task": "approvals.cab.tasks.prepare_cab_meetings_task",
        "schedule": 3600.0,
    },
    # Reviews: owners reminded a day before the due time; late ones escalated to the CAB once.
    "chase-reviews": {"task": "changes.reviews.tasks.chase_reviews_task", "schedule": 900.0},
    # Every outbound call (webhooks, chat, pipeline callbacks, rollback hooks) waits in the
    # outbox; delivery is kicked on commit and retried here.
    "deliver-outbox": {"task": "governance.tasks.deliver_outbox_task", "schedule": 60.0},
    # Pipelines waiting on a gate that was blocked when their release was approved.
    "answer-waiting-pipelines": {
        "task": "approvals.pipelines.tasks.answer_waiting_pipelines_task",
        "schedule": 60.0,
    },
    # Post-deploy verification: health polls of deployments inside their window.
    "verify-deployments": {
        "task": "approvals.verification.tasks.verify_deployments_task",
        "schedule": 30.0,
    },
    "deliver-notifications": {
        "task": "governance.tasks.deliver_notifications_task",
        "schedule": 60.0,
    },
    "expire-role-grants": {"task": "governance.tasks.expire_role_grants_task", "schedule": 300.0},
    # Anchors the ledger outside the database; skipped when nothing was appended since.
    "write-ledger-checkpoint": {
        "task": "governance.tasks.write_ledger_checkpoint_task",
        "schedule": 300.0,
    },
    # Quarterly access review: 06:00 UTC on the first day of January, April, July and October.
    "quarterly-access-review": {
        "task": "governance.tasks.start_access_review_task",
        "schedule": crontab(minute=0, hour=6, day_of_month=1, month_of_year="1,4,7,10"),
    },
    # Quarterly review of exceptions and bypasses: 06:30 UTC on a quarter's first day, for the
    # quarter just ended.
    "quarterly-review": {
        "task": "reporting.reviews.tasks.start_quarterly_review_task",
        "schedule": crontab(minute=30, hour=6, day_of_month=1, month_of_year="1,4,7,10"),
    },
    # Approval metrics: rollups of what changed since the last refresh.
    "refresh-metrics": {"task": "reporting.metrics.tasks.refresh_metrics_task", "schedule": 300.0},
    # The data-lake export (docs/lake.md): what the ledger recorded since the last run.
    "export-lake": {"task": "reporting.lake.tasks.export_lake_task", "schedule": 900.0},
    # Anomaly detectors over the rolling window; each finding is raised once, so reruns are safe.
    "detect-anomalies": {
        "task": "reporting.anomalies.tasks.detect_anomalies_task",
        "schedule": 3600.0,
    },
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# Ledger signing key: base64 of a raw 32-byte Ed25519 private key. In development a key is
# generated under var/ on first use; in production it must be provided.
LEDGER_SIGNING_KEY = env_secret("LEDGER_SIGNING_KEY")
LEDGER_KEY_FILE = VAR_DIR / "ledger-signing.key"
# Public keys (base64) of retired signing keys, so entries they signed still verify.
LEDGER_PUBLIC_KEYS = env_list("LEDGER_PUBLIC_KEYS")
if not LEDGER_SIGNING_KEY and not (DEBUG or TESTING):
    raise ImproperlyConfigured("LEDGER_SIGNING_KEY (or LEDGER_SIGNING_KEY_FILE) must be set")

# Signed ledger checkpoints anchor the chain where the database cannot rewrite it: a folder by
# default, an S3-compatible bucket (django-storages; needs boto3) when LEDGER_CHECKPOINT_BUCKET
# is set. Files are only ever added; a write-once bucket (S3 Object Lock) keeps them that way.
LEDGER_CHECKPOINT_STORAGE = "ledger_checkpoints"
LEDGER_CHECKPOINT_BUCKET = env_str("LEDGER_CHECKPOINT_BUCKET")
if LEDGER_CHECKPOINT_BUCKET:
    STORAGES[LEDGER_CHECKPOINT_STORAGE] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": LEDGER_CHECKPOINT_BUCKET,
            "location": env_str("LEDGER_CHECKPOINT_PREFIX") or "ledger-checkpoints",
            "endpoint_url": env_str("LEDGER_CHECKPOINT_ENDPOINT_URL") or None,
            "region_name": env_str("LEDGER_CHECKPOINT_REGION") or None,
            # Never replace an object: a name clash gets a new name instead.
            "file_overwrite": False,
        },
    }
else:
    STORAGES[LEDGER_CHECKPOINT_STORAGE] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env_str("LEDGER_CHECKPOINT_DIR") or str(VAR_DIR / "checkpoints")},
    }

# The data-lake export (reporting/lake, docs/lake.md): approval events as CloudEvents and Parquet
# in a folder by default, in an S3-compatible bucket (django-storages, boto3) when
# SIGNOFF_LAKE_BUCKET is set. Files of an interrupted batch are written again under the same
# names, so the bucket must let them be replaced (no Object Lock on the prefix).
LAKE_STORAGE = "lake"
LAKE_BUCKET = env_str("SIGNOFF_LAKE_BUCKET")
if LAKE_BUCKET:
    STORAGES[LAKE_STORAGE] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": LAKE_BUCKET,
            "location": env_str("SIGNOFF_LAKE_PREFIX", "signoff"),
            "endpoint_url": env_str("SIGNOFF_LAKE_ENDPOINT_URL") or None,
            "region_name": env_str("SIGNOFF_LAKE_REGION") or None,
            # Without keys, boto3 finds credentials itself (instance role, AWS_* variables).
            "access_key": env_secret("SIGNOFF_LAKE_ACCESS_KEY_ID") or None,
            "secret_key": env_secret("SIGNOFF_LAKE_SECRET_ACCESS_KEY") or None,
            "file_overwrite": True,
        },
    }
else:
    STORAGES[LAKE_STORAGE] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": env_str("SIGNOFF_LAKE_DIR") or str(VAR_DIR / "lake")},
    }
# Storage aliases the periodic export writes to, each with its own watermark.
LAKE_DESTINATIONS = env_list("SIGNOFF_LAKE_DESTINATIONS", LAKE_STORAGE)


# SCIM 2.0 provisioning at /scim/v2/ (Okta, Microsoft Entra ID). Bearer tokens come from
# `manage.py issue_scim_token`; the check wraps django-scim2's views (AUTH_CHECK_MIDDLEWARE), so
# there is no SCIM middleware in MIDDLEWARE and sessions never authenticate a SCIM request.
_SITE = urlsplit(SITE_URL)
SCIM_SERVICE_PROVIDER = {
    "SCHEME": _SITE.scheme or "https",
    "NETLOC": _SITE.netloc,
    "USER_ADAPTER": "governance.identity.scim.ScimUser",
    "GROUP_ADAPTER": "governance.identity.scim.ScimGroup",
    "GROUP_MODEL": "governance.models.IdentityGroup",
    "USER_FILTER_PARSER": "governance.identity.scim_filters.UserFilter",
    "GROUP_FILTER_PARSER": "governance.identity.scim_filters.GroupFilter",
    "AUTH_CHECK_MIDDLEWARE": "governance.identity.scim.ScimTokenAuthMiddleware",
    "GET_EXTRA_MODEL_FILTER_KWARGS_GETTER": "governance.identity.scim.extra_filter_kwargs_getter",
    "SERVICE_PROVIDER_CONFIG_MODEL": "governance.identity.scim.ServiceProviderConfig",
    "WWW_AUTHENTICATE_HEADER": 'Bearer realm="signoff-scim"',
    "AUTHENTICATION_SCHEMES": [
        {
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authorization: Bearer <token from manage.py issue_scim_token>",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": True,
        }
    ],
}

# E-mail: printed to the console in development unless EMAIL_URL-style settings are given.
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG
    else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_secret("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Signoff <signoff@localhost>")

# How long a pending request waits for decisions before it is reported as expired.
SIGNOFF_PENDING_TIMEOUT_HOURS = env_int("SIGNOFF_PENDING_TIMEOUT_HOURS", 24 * 7)

# The incidents that hold releases to high-risk environments: open ones at or above this
# priority (1 = P1, the worst; ServiceNow's 1 and 2 arrive as P1/P2 with high urgency), and
# open ones of high urgency whatever their priority unless SIGNOFF_INCIDENT_BLOCKING_URGENCY=none.
SIGNOFF_INCIDENT_BLOCKING_PRIORITY = env_int("SIGNOFF_INCIDENT_BLOCKING_PRIORITY", 1)
if not 1 <= SIGNOFF_INCIDENT_BLOCKING_PRIORITY <= 5:
    raise ImproperlyConfigured("SIGNOFF_INCIDENT_BLOCKING_PRIORITY must be 1 (P1) to 5 (P5).")
SIGNOFF_INCIDENT_BLOCKING_URGENCY = env_str("SIGNOFF_INCIDENT_BLOCKING_URGENCY", "high")
if SIGNOFF_INCIDENT_BLOCKING_URGENCY not in ("high", "none"):
    raise ImproperlyConfigured("SIGNOFF_INCIDENT_BLOCKING_URGENCY must be 'high' or 'none'.")

# A post-implementation review opened by a failed, rolled-back or unapproved deployment is due
# this many hours later (an emergency's post-mortem: the policy's `emergency.post_mortem_hours`).
SIGNOFF_REVIEW_DUE_HOURS = env_int("SIGNOFF_REVIEW_DUE_HOURS", 5 * 24)
if SIGNOFF_REVIEW_DUE_HOURS < 1:
    raise ImproperlyConfigured("SIGNOFF_REVIEW_DUE_HOURS must be at least 1 (hour).")

# Outbound events (emergencies declared, releases under enhanced monitoring, ...) are POSTed as
# JSON to each of these URLs, signed with HMAC-SHA256 under the secret when one is set.
SIGNOFF_EVENT_WEBHOOKS = env_list("SIGNOFF_EVENT_WEBHOOKS")
SIGNOFF_EVENT_WEBHOOK_SECRET = env_secret("SIGNOFF_EVENT_WEBHOOK_SECRET") or ""
# Teams' subscriptions may not call private, loopback or link-local addresses (the
# organisation's own network, cloud metadata) unless this is on (a lab, the test suite).
SIGNOFF_OUTBOUND_ALLOW_PRIVATE = env_bool("SIGNOFF_OUTBOUND_ALLOW_PRIVATE", False)

# The GitHub App that answers deployment protection rules: its id and PEM private key (or
# SIGNOFF_GITHUB_APP_PRIVATE_KEY_FILE). `make run` writes throwaway ones for the demo.
SIGNOFF_GITHUB_APP_ID = env_str("SIGNOFF_GITHUB_APP_ID", "")
SIGNOFF_GITHUB_APP_PRIVATE_KEY = env_secret("SIGNOFF_GITHUB_APP_PRIVATE_KEY") or ""
# GitLab: the approval rule (user, group or role name) Signoff's token approves as, when that
# user belongs to several rules of a protected environment (the API's `represented_as`).
SIGNOFF_GITLAB_REPRESENTED_AS = env_str("SIGNOFF_GITLAB_REPRESENTED_AS", "")
# Where an Azure DevOps check's answer may go (its job token goes with it): host names, or
# ".suffix" for every host under a domain. Add an Azure DevOps Server's host here.
SIGNOFF_AZURE_DEVOPS_HOSTS = tuple(
    host.lower()
    for host in env_list("SIGNOFF_AZURE_DEVOPS_HOSTS", "dev.azure.com,.visualstudio.com")
)

# How often an open release page asks whether anything changed (while its tab is visible).
# Each unchanged answer is a 204 costing a few small queries.
SIGNOFF_LIVE_POLL_SECONDS = env_int("SIGNOFF_LIVE_POLL_SECONDS", 10)
if SIGNOFF_LIVE_POLL_SECONDS < 1:
    raise ImproperlyConfigured("SIGNOFF_LIVE_POLL_SECONDS must be at least 1 (seconds).")

# Prometheus scrapes /metrics with `Authorization: Bearer <this>` (or the contents of
# SIGNOFF_METRICS_TOKEN_FILE). Unset: /metrics answers 404 (metrics off).
SIGNOFF_METRICS_TOKEN = env_secret("SIGNOFF_METRICS_TOKEN") or ""
if SIGNOFF_METRICS_TOKEN and len(SIGNOFF_METRICS_TOKEN) < 32:
    raise ImproperlyConfigured(
        "SIGNOFF_METRICS_TOKEN must be at least 32 characters; generate one with "
        'python -c "import secrets; print(secrets.token_urlsafe(32))"'
    )

# Anomaly alerts: who hears about them (besides the organisation's security approvers), and how
# far behaviour must deviate from a person's or team's own history (reporting/anomalies).
SIGNOFF_SECURITY_WEBHOOKS = env_list("SIGNOFF_SECURITY_WEBHOOKS")
SIGNOFF_ANOMALY_BASELINE_DAYS = env_int("SIGNOFF_ANOMALY_BASELINE_DAYS", 90)
SIGNOFF_ANOMALY_EVALUATION_HOURS = env_int("SIGNOFF_ANOMALY_EVALUATION_HOURS", 24)
SIGNOFF_ANOMALY_RUBBER_STAMP_SECONDS = env_int("SIGNOFF_ANOMALY_RUBBER_STAMP_SECONDS", 30)
SIGNOFF_ANOMALY_OFF_HOURS_COVERAGE_PERCENT = env_int(
    "SIGNOFF_ANOMALY_OFF_HOURS_COVERAGE_PERCENT", 95
)
SIGNOFF_ANOMALY_OFF_HOURS_MARGIN = env_int("SIGNOFF_ANOMALY_OFF_HOURS_MARGIN", 2)
SIGNOFF_ANOMALY_OFF_HOURS_MIN_DECISIONS = env_int("SIGNOFF_ANOMALY_OFF_HOURS_MIN_DECISIONS", 20)
SIGNOFF_ANOMALY_VOLUME_SIGMAS = env_int("SIGNOFF_ANOMALY_VOLUME_SIGMAS", 3)
SIGNOFF_ANOMALY_VOLUME_MIN_DAYS = env_int("SIGNOFF_ANOMALY_VOLUME_MIN_DAYS", 14)
SIGNOFF_ANOMALY_VOLUME_MIN_DECISIONS = env_int("SIGNOFF_ANOMALY_VOLUME_MIN_DECISIONS", 5)
SIGNOFF_ANOMALY_RECIPROCITY_MIN = env_int("SIGNOFF_ANOMALY_RECIPROCITY_MIN", 3)
SIGNOFF_ANOMALY_NEVER_REJECTS_MIN = env_int("SIGNOFF_ANOMALY_NEVER_REJECTS_MIN", 30)
SIGNOFF_ANOMALY_NEW_CLIENT_MIN_BASELINE = env_int("SIGNOFF_ANOMALY_NEW_CLIENT_MIN_BASELINE", 3)

if not DEBUG and not TESTING:
    SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
    CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # Plain HTTP is redirected to HTTPS, and browsers are told to never try HTTP again (HSTS).
    SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
    # Probes and Prometheus talk to the process directly, over plain HTTP, without the proxy.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
    SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 365 * 24 * 3600)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
    # Only a header: a domain joins browsers' preload list when its owner submits the apex.
    SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", True)

# Content-Security-Policy (django-csp), in development too so tests see what production enforces:
# everything from our own origin, and no inline script, inline style or eval anywhere. htmx is
# told so in base.html (htmx-config); Swagger UI loads its start-up script as a file.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [CSP_SELF],
        "script-src": [CSP_SELF],
        # drf-spectacular's Swagger UI page has one fixed <style> block, allowed by its hash.
        "style-src": [CSP_SELF, "'sha256-MMpT0iDxyjALd9PdfepImGX3DBfJPXZ4IlDWdPAgtn0='"],
        # Bootstrap draws its form controls and toggler with data: SVG images.
        "img-src": [CSP_SELF, "data:"],
        "font-src": [CSP_SELF],
        "connect-src": [CSP_SELF],
        "object-src": [CSP_NONE],
        "base-uri": [CSP_SELF],
        "form-action": [CSP_SELF],
        "frame-ancestors": [CSP_NONE],
    }
}

LOGGING = logs.logging_config(level=env_str("LOG_LEVEL", "INFO"))

# Error reporting to Sentry, or a service speaking its protocol (GlitchTip, self-hosted Sentry):
# on when SENTRY_DSN (or SENTRY_DSN_FILE) is set. No personal data and no secrets are sent;
# performance tracing stays off unless SENTRY_TRACES_SAMPLE_RATE (0 to 1) is given.
SENTRY_DSN = env_secret("SENTRY_DSN") or ""
if SENTRY_DSN:
    # Imported here: without a DSN, the SDK is not even loaded.
    from config import sentry

    sentry.init(
        dsn=SENTRY_DSN,
        environment=env_str("SENTRY_ENVIRONMENT") or None,
        release=env_str("SENTRY_RELEASE") or None,
        traces_sample_rate=sentry.sample_rate(env_str("SENTRY_TRACES_SAMPLE_RATE")),
    )
