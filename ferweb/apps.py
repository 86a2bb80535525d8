from django.apps import AppConfig


class FerwebConfig(AppConfig):
    """The project itself, as an app without models: it loads the Celery app when Django starts."""

    name = "ferweb"
    verbose_name = "FERWeb"

    def ready(self):
        # A task queued from the web process or a command (shared_task.delay) goes through the current
        # Celery app; importing ferweb.celery makes that the project's app, configured from the settings.
        from . import celery  # noqa: F401
