"""Admin for inference jobs and the model registry: read what happened, promote a site default."""
from django.contrib import admin, messages

from . import services
from .models import ActiveModelChoice, InferenceJob, ModelVersion


@admin.register(InferenceJob)
class InferenceJobAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "kind", "source_name", "status", "progress", "num_faces", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("source_name", "owner__username")
    readonly_fields = ("summary", "heartbeat_at", "worker", "attempts", "started_at", "finished_at")

    def has_add_permission(self, request):
        return False  # jobs start from an upload on the jobs page or the API


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ("version", "owner", "architecture", "accuracy", "latency_ms", "is_site_default", "created_at")
    list_filter = ("architecture", "is_site_default")
    search_fields = ("version", "owner__username")
    list_select_related = ("owner",)
    readonly_fields = ("run_id", "owner", "onnx_file", "architecture", "version", "metrics", "param_count",
                       "latency_ms", "parity_max_abs_diff", "is_site_default", "created_at")
    actions = ["make_site_default"]

    def has_add_permission(self, request):
        return False  # versions are exported by training runs, with their ONNX file and metrics

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
