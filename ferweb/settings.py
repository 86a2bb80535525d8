"""FERWeb settings: one flat file, every knob read from the environment.

Defaults work on a laptop with nothing installed: SQLite, a local media
folder and the Redis that `make run` starts when none answers.
"""
import os
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def envbool(name: str, default: str) -> bool:
    value = os.environ.get(name, default)
    if value not in ("True", "False"):
        raise ValueError(f"{name} must be 'True' or 'False', got {value!r}")
    return value == "True"


def envint(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# Off unless asked for: the debug pages list every URL pattern and setting to anyone who hits an error.
# WhiteNoise serves static files either way (see WHITENOISE_USE_FINDERS); DEBUG=True for development.
DEBUG = envbool("DEBUG", "False")
SECRET_KEY = os.environ.get("SECRET_KEY", "ferweb-development-key-change-me-in-production")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
PORT = envint("PORT", 8000)

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "ferweb.accounts",
    "ferweb.datasets",
    "ferweb.labeling",
    "training_jobs",
    "inference",
    "frontend",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ferweb.urls"
ASGI_APPLICATION = "ferweb.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# Database: SQLite unless DATABASE_URL names another (postgres://user@host:5432/name).
DATA_DIR = Path(os.environ.get("FERWEB_DATA_DIR", BASE_DIR / "var"))
DATA_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": dj_database_url.config(
        env="DATABASE_URL",
        default=f"sqlite:///{DATA_DIR / 'ferweb.sqlite3'}",
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Web, workers and tests share one file: wait for locks instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"timeout": 30, "transaction_mode": "IMMEDIATE"})
    DATABASES["default"]["TEST"] = {"NAME": os.environ.get("FERWEB_TEST_SQLITE", str(DATA_DIR / "test.sqlite3"))}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/datasets/"
LOGOUT_REDIRECT_URL = "/accounts/login/"
# A setting can close sign-up on a public install.
FERWEB_OPEN_SIGNUP = envbool("FERWEB_OPEN_SIGNUP", "True")

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", DATA_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve straight from the apps' static folders (no collectstatic step), with DEBUG on or off.
# With DEBUG off the file list is read once at start: restart after adding or editing a static file.
WHITENOISE_USE_FINDERS = True

# Uploads: anything above the memory threshold spools to disk.
FERWEB_MAX_UPLOAD_BYTES = envint("FERWEB_MAX_UPLOAD_BYTES", 512 * 1024 * 1024)  # bytes, whole request
FERWEB_MAX_IMAGE_BYTES = envint("FERWEB_MAX_IMAGE_BYTES", 20 * 1024 * 1024)  # bytes, one predicted image
# Websocket messages: the webcam consumer's own limit, and the server's, above it so that the
# consumer (not the server) answers an oversized frame with `too_large`.
FERWEB_MAX_FRAME_BYTES = envint("FERWEB_MAX_FRAME_BYTES", 2 * 1024 * 1024)  # bytes, one webcam frame
FERWEB_WS_MAX_MESSAGE_BYTES = 4 * FERWEB_MAX_FRAME_BYTES  # bytes; larger messages close the socket (1009)
FERWEB_ACCESS_LOG = envbool("FERWEB_ACCESS_LOG", "False")  # one log line per request from the web server
DATA_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024  # bytes of non-file form data
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024  # bytes kept in memory before spooling
# Zip-bomb guards, checked from the central directory before anything is extracted.
FERWEB_MAX_ARCHIVE_UNCOMPRESSED_BYTES = envint("FERWEB_MAX_ARCHIVE_UNCOMPRESSED_BYTES", 4 * 1024**3)  # bytes
FERWEB_MAX_ARCHIVE_MEMBERS = envint("FERWEB_MAX_ARCHIVE_MEMBERS", 200_000)  # files
FERWEB_MAX_COMPRESSION_RATIO = envint("FERWEB_MAX_COMPRESSION_RATIO", 200)  # uncompressed / compressed, per member
# Dataset imports: a worker that restarts, or an import silent this long, counts as crashed.
FERWEB_IMPORT_STALE_SECONDS = envint("FERWEB_IMPORT_STALE_SECONDS", 300)  # seconds without a heartbeat
FERWEB_IMPORT_MAX_ATTEMPTS = envint("FERWEB_IMPORT_MAX_ATTEMPTS", 2)  # tries before a crashed import is failed
# Labeling: a photo-processing job silent this long is taken over by the next worker that asks.
FERWEB_LABELING_STALE_SECONDS = envint("FERWEB_LABELING_STALE_SECONDS", 120)  # seconds without a heartbeat

# Redis: Celery broker and the Channels layer.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "inference"
CELERY_TASK_ROUTES = {
    "training_jobs.*": {"queue": "training"},
    "ferweb.datasets.*": {"queue": "inference"},
    "ferweb.labeling.*": {"queue": "inference"},
    "inference.*": {"queue": "inference"},
}
# A task that outlives the visibility timeout is redelivered: keep it above the longest training run.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 7 * 24 * 3600}  # seconds
CELERY_TASK_ALWAYS_EAGER = envbool("FERWEB_CELERY_EAGER", "False")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # redis-py 8 reads with a 5 s socket timeout by default, the same as channels-redis's
        # blocking pop: idle consumers then die with "Timeout reading". Read longer than the pop.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "capacity": 500, "expiry": 30},
    }
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "EXCEPTION_HANDLER": "ferweb.api_errors.exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "FERWeb API",
    "VERSION": "1.0.0",
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    # /api/docs/ loads Swagger UI from our static files, never from a CDN: it works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Training: a running run whose worker sent no heartbeat for this long is taken as lost.
FERWEB_RUN_STALE_SECONDS = envint("FERWEB_RUN_STALE_SECONDS", 300)  # seconds

# Inference: the model that serves until a user promotes one of their own.
FERWEB_DEFAULT_MODEL = Path(os.environ.get("FERWEB_DEFAULT_MODEL", BASE_DIR / "inference" / "models" / "default.onnx"))
FERWEB_INFERENCE_THREADS = envint("FERWEB_INFERENCE_THREADS", 2)  # ONNX Runtime intra-op threads
FERWEB_MIN_FACE_SIZE = envint("FERWEB_MIN_FACE_SIZE", 24)  # pixels, in the original image
FERWEB_FACE_DETECTOR = os.environ.get("FERWEB_FACE_DETECTOR", "auto")  # auto, blazeface or haar
# Serve a model's INT8 variant (written by `manage.py quantize_model` only when accurate enough).
FERWEB_PREFER_INT8 = envbool("FERWEB_PREFER_INT8", "True")
FERWEB_SERVE_THREADS = envint("FERWEB_SERVE_THREADS", 2)  # web-process threads for webcam frames
FERWEB_SERVE_MAX_PENDING = envint("FERWEB_SERVE_MAX_PENDING", 8)  # predictions in progress before refusing
FERWEB_VIDEO_MAX_SECONDS = envint("FERWEB_VIDEO_MAX_SECONDS", 4 * 3600)  # seconds of video one job may read
FERWEB_JOB_STALE_SECONDS = envint("FERWEB_JOB_STALE_SECONDS", 120)  # seconds without progress before a job is retaken

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("FERWEB_LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
