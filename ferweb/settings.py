"""FERWeb settings: one flat file, every knob read from the environment.

Defaults work on a laptop with nothing installed: SQLite, a local media
folder and the Redis that `make run` starts when none answers.
"""
import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

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


def envrate(name: str, default: str) -> str:
    """A throttle rate in DRF's syntax: `<count>/<period>`, e.g. `10/minute` or `5/hour`."""
    value = os.environ.get(name) or default
    if not re.fullmatch(r"[1-9][0-9]*/(s|sec|second|m|min|minute|h|hour|d|day)", value):
        raise ImproperlyConfigured(f"{name} must look like 10/minute (periods: second, minute, hour, day), got {value!r}")
    return value


# Off unless asked for: the debug pages list every URL pattern and setting to anyone who hits an error.
# WhiteNoise serves static files either way (see WHITENOISE_USE_FINDERS); DEBUG=True for development.
DEBUG = envbool("DEBUG", "False")
# Everything the site keeps on disk that is not media: the SQLite file, static files, the secret key.
DATA_DIR = Path(os.environ.get("FERWEB_DATA_DIR", BASE_DIR / "var"))
DATA_DIR.mkdir(parents=True, exist_ok=True)


def secret_key() -> str:
    """The key that signs sessions, tokens and password-reset links.

    1. SECRET_KEY from the environment;
    2. else the key that `make run` writes once to DATA_DIR/secret-key.txt and keeps;
    3. else, with DEBUG on, a development key;
    4. else refuse to start: a key in the repository would let anyone forge sessions.
    """
    if os.environ.get("SECRET_KEY"):
        return os.environ["SECRET_KEY"]
    key_file = DATA_DIR / "secret-key.txt"
    if key_file.is_file() and key_file.read_text().strip():
        return key_file.read_text().strip()
    if DEBUG:
        return "ferweb-development-key-never-use-in-production"
    raise ImproperlyConfigured(
        f"No secret key: set SECRET_KEY (50+ random characters, e.g. from "
        f"`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), write one to {key_file}, "
        f"or set DEBUG=True for development."
    )


SECRET_KEY = secret_key()
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")
PORT = envint("PORT", 8000)

# HTTPS. The defaults serve plain HTTP on 127.0.0.1 (`make run`); a public install behind TLS turns
# these on (README, "Production settings"), and then `manage.py check --deploy` is clean.
# Behind a proxy that ends TLS: trust its X-Forwarded-Proto (only if it always sets or strips it).
FERWEB_BEHIND_TLS_PROXY = envbool("FERWEB_BEHIND_TLS_PROXY", "False")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if FERWEB_BEHIND_TLS_PROXY else None
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", "False")  # redirect http:// to https://
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 0)  # seconds browsers insist on HTTPS; 0 sends no header
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", "False")
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", "False")
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", "False")  # session cookie over HTTPS only
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", "False")  # CSRF cookie over HTTPS only

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "ferweb",  # the project: loads the Celery app when Django starts (ferweb/apps.py)
    "ferweb.accounts",
    "ferweb.datasets",
    "ferweb.labeling",
    "training_jobs",
    "inference",
    "frontend",
]

MIDDLEWARE = [
    # First, so it sees every other answer: requests the API cannot read get its JSON error shape.
    "ferweb.api_middleware.ApiErrorMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as axes asks: turns a locked-out login into its 429 answer (ferweb.accounts.abuse).
    "axes.middleware.AxesMiddleware",
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

# Abuse limits (ferweb.accounts.abuse). A password check costs ~0.4 s of CPU (PBKDF2): the throttles
# refuse before any hashing. They count per client address (REMOTE_ADDR; an IPv6 /64 is one address)
# in the shared cache, so every web process sees the same counts. Per minute by default, so that a
# class behind one NAT can sign up at once; a public install may want FERWEB_SIGNUP_RATE=5/hour.
FERWEB_LOGIN_RATE = envrate("FERWEB_LOGIN_RATE", "10/minute")  # login page, admin login and API token, together
FERWEB_SIGNUP_RATE = envrate("FERWEB_SIGNUP_RATE", "10/minute")  # sign-up page and API, together
# Lockout (django-axes): this many failed logins for one username from one address lock that pair
# until FERWEB_LOCKOUT_MINUTES pass without another try. Username *and* address, so that nobody can
# lock a user out from elsewhere; an attacker spread over many addresses meets each one's throttle.
FERWEB_LOCKOUT_FAILURES = envint("FERWEB_LOCKOUT_FAILURES", 10)  # failed logins
FERWEB_LOCKOUT_MINUTES = envint("FERWEB_LOCKOUT_MINUTES", 15)  # minutes
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out pair before any hashing
    "django.contrib.auth.backends.ModelBackend",
]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"  # one table that every web process shares
AXES_FAILURE_LIMIT = FERWEB_LOCKOUT_FAILURES
AXES_COOLOFF_TIME = timedelta(minutes=FERWEB_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a successful login clears that pair's failures
AXES_DISABLE_ACCESS_LOG = True  # failures are recorded, successful logins not (that table would only grow)
AXES_CLIENT_IP_CALLABLE = "ferweb.accounts.abuse.client_address"
AXES_LOCKOUT_CALLABLE = "ferweb.accounts.abuse.lockout_response"
AXES_VERBOSE = False  # no banner from every process at start

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
# Decoded images: one limit for every upload that is decoded (imports, labeling, predict, jobs,
# webcam), checked from the image header before any pixel is decoded. Pillow's own guard caps it
# at about 179 megapixels.
FERWEB_MAX_IMAGE_PIXELS = envint("FERWEB_MAX_IMAGE_PIXELS", 50_000_000)  # pixels, width x height
# Background jobs (dataset imports, labeling sets, inference jobs, training runs; ferweb/jobs.py):
# a running job whose worker restarts, or that sent no heartbeat for this long, is lost. It starts
# over (a run from its last epoch), and fails as worker_lost once it has been started this often.
# A live job beats at least every 30 s (a run that evaluates or exports), so the limit only sets how
# soon another worker notices one gone for good; a restarting worker recovers its own jobs at once.
FERWEB_JOB_STALE_SECONDS = envint("FERWEB_JOB_STALE_SECONDS", 300)  # seconds without a heartbeat
FERWEB_JOB_MAX_ATTEMPTS = envint("FERWEB_JOB_MAX_ATTEMPTS", 2)  # starts, before a job whose worker died is failed

# Redis: Celery broker and the Channels layer.
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# The cache: throttle counters that every web process shares, so it must not be per-process memory.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("FERWEB_CACHE_URL") or REDIS_URL,
        "KEY_PREFIX": os.environ.get("FERWEB_CACHE_PREFIX", "ferweb"),  # room for other apps on the same Redis
        "TIMEOUT": 300,  # seconds, for entries stored without their own
        # A Redis that hangs fails a request in seconds instead of holding it (and its worker thread).
        "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},  # seconds
    }
}
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
    # Throttles count per REMOTE_ADDR, never per a client-sent X-Forwarded-For (anyone can forge it);
    # the web server rewrites REMOTE_ADDR only for proxies in FORWARDED_ALLOW_IPS.
    "NUM_PROXIES": 0,
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
    # One error shape, documented on every operation (ferweb/api_schema.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "ferweb.api_schema.document_errors"],
}

# Training limits and per-user quotas (training_jobs/ml/memory.py, ferweb/quotas.py).
# The training process of one run may use this much memory: a recipe estimated above it is refused
# at creation, and a run that grows past it is stopped as out_of_memory. Half the machine's memory
# by default, leaving the rest to the web server, the inference worker, Redis and the page cache.
_MACHINE_MB = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1024 * 1024)
FERWEB_TRAIN_MAX_MEMORY_MB = envint("FERWEB_TRAIN_MAX_MEMORY_MB", _MACHINE_MB // 2)  # MB (MiB)
# A run's num_threads above the training worker's cores is lowered to them (with a note).
FERWEB_TRAIN_MAX_THREADS = envint("FERWEB_TRAIN_MAX_THREADS", os.cpu_count() or 1)  # threads (cores)
# Duration estimates come from the training worker's measured speed: it measures the quick preset
# when it first starts on a device, and any other combination an estimate asks for (a few seconds each).
FERWEB_MEASURE_THROUGHPUT = envbool("FERWEB_MEASURE_THROUGHPUT", "True")
# Per-user quotas (staff are exempt): 429 for the counts, 413/400 for storage.
FERWEB_QUOTA_ACTIVE_RUNS = envint("FERWEB_QUOTA_ACTIVE_RUNS", 3)  # queued + running runs per user; 0 = no quota
FERWEB_QUOTA_ACTIVE_JOBS = envint("FERWEB_QUOTA_ACTIVE_JOBS", 3)  # queued + running inference jobs per user; 0 = no quota
FERWEB_QUOTA_STORAGE_MB = envint("FERWEB_QUOTA_STORAGE_MB", 5000)  # MB (MiB) stored per user; 0 = no quota

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

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("FERWEB_LOG_LEVEL", "INFO")},
    "loggers": {"django.channels.server": {"level": "WARNING"}},
}
