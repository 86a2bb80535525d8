"""FERWeb: the Django project (settings, URLs, the Celery app), its apps, and the framework-free core.

Importing this package loads nothing, so `fercore` works where Django is not installed.
The Celery app lives in `ferweb.celery`: `celery -A ferweb` looks it up there by itself, and
Django loads it when it starts (`ferweb.apps`).
"""
