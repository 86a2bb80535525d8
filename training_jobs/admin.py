"""Admin for runs and model versions: read what happened, cancel, promote a site default."""
from django.contrib import admin, messages

from training_jobs import services
from training_jobs.models import ActiveModelChoice, ModelVersion, TrainingRun


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


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("version", "owner", "architecture", "accuracy", "latency_ms", "is_site_default", "created_at")
    list_filter = ("architecture", "is_site_default")
    search_fields = ("version", "owner__username")
    list_select_related = ("owner",)
    readonly_fields = ("run", "owner", "onnx_file", "architecture", "version", "metrics", "param_count",
                       "latency_ms", "parity_max_abs_diff", "is_site_default", "created_at")
    actions = ["make_site_default"]

    @admin.display(description="accuracy")
    def accuracy(self, version):
        value = version.metrics.get("accuracy")
        return "–" if value is None else f"{value:.3f}"

    @admin.action(description="Make the site default (serves everyone without a choice of their own)")
    def make_site_default(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Choose exactly one model version.", messages.ERROR)
            return
        services.model_activate(user=request.user, model_version=queryset.get(), site_default=True)
        self.message_user(request, "Site default changed.", messages.SUCCESS)


@admin.register(ActiveModelChoice)
class ActiveModelChoiceAdmin(admin.ModelAdmin):
    list_display = ("user", "model_version", "chosen_at")
    list_select_related = ("user", "model_version")
