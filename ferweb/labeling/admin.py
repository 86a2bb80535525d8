from django.contrib import admin

from .models import LabelingFace, LabelingPhoto, LabelingSet


@admin.register(LabelingSet)
class LabelingSetAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "status", "photos_done", "photos_total", "created_at")
    list_filter = ("status",)
    search_fields = ("name", "owner__username")
    readonly_fields = ("report", "attempts", "heartbeat_at", "worker", "started_at", "finished_at")


@admin.register(LabelingPhoto)
class LabelingPhotoAdmin(admin.ModelAdmin):
    list_display = ("id", "labeling_set", "name", "status", "num_faces", "reason")
    list_filter = ("status",)


@admin.register(LabelingFace)
class LabelingFaceAdmin(admin.ModelAdmin):
    list_display = ("id", "labeling_set", "source_name", "proposed_label", "proposed_probability", "confirmed_label", "status")
    list_filter = ("status",)
    exclude = ("crop_png",)
