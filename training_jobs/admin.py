"""Admin for runs: read what happened, cancel. Model versions are in inference/admin.py."""
from django.contrib import admin, messages

from training_jobs import services
from training_jobs.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "architecture", "optimizer", "status", "progress", "accuracy", "created_at")
    list_filter = ("status", "architecture", "optimizer")
    search_fields = ("name", "owner__username", "dataset__name")
    list_select_related = ("owner", "dataset")
    readonly_fields = (
        "owner", "dataset", "config", "architecture", "optimizer", "init_from_run", "init_checkpoint", "status",
        "progress", "error", "human_readable_error", "param_count", "wall_time_s", "best_epoch",
        "best_val_accuracy", "worker", "heartbeat_at", "attempts", "cancel_requested", "celery_task_id",
        "created_at", "started_at", "finished_at",
    )
    exclude = ("history", "last_batch", "metrics")  # large; the run page draws them
    actions = ["cancel"]

    def has_add_permission(self, request):
        return False  # runs are started from the run form or the API, which check the recipe and queue the work

    @admin.display(description="accuracy")
    def accuracy(self, run):
        value = run.metrics.get("accuracy")
        return "–" if value is None else f"{value:.3f}"

    @admin.action(description="Cancel the selected queued or running runs")
    def cancel(self, request, queryset):
        active = [run for run in queryset if not run.is_finished]
        for run in active:
            services.run_cancel(run=run)
        self.message_user(request, f"Cancel requested for {len(active)} run(s).", messages.SUCCESS)
