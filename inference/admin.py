from django.contrib import admin

from .models import InferenceJob


@admin.register(InferenceJob)
class InferenceJobAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "kind", "source_name", "status", "progress", "num_faces", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("source_name", "owner__username")
    readonly_fields = ("summary", "heartbeat_at", "worker", "attempts", "started_at", "finished_at")
