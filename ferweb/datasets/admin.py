"""Admin for datasets and their faces: thumbnails, filters, bulk relabel / move / exclude.

Every edit goes through services.dataset_items_update, so counts follow and the edit makes a new
version of the dataset (ferweb.datasets.versions): a version a run trained on never changes.
"""
from django.contrib import admin, messages
from django.utils.html import format_html, format_html_join

from fercore.classes import CLASSES

from . import quality, services
from .models import Dataset, DatasetItem, DatasetVersion

MOVE_TO_SPLITS = ("train", "val", "test")


def thumbnail(item: DatasetItem, size: int = 48):
    return format_html(
        '<img src="/api/datasets/{}/items/{}.png" width="{}" height="{}" style="image-rendering:pixelated" alt="">',
        item.dataset_id, item.index, size, size,
    )


@admin.register(Dataset)
class DatasetAdmin(admin.ModelAdmin):
    list_display = ("name", "owner", "status", "num_items", "trained_on", "created_at")
    list_filter = ("status", ("locked_at", admin.EmptyFieldListFilter))
    search_fields = ("name", "owner__username", "source_name")
    readonly_fields = (
        "status", "progress", "error", "human_readable_error", "source_name", "source_format", "num_items",
        "class_count_table", "split_counts", "attempts", "worker", "heartbeat_at", "locked_at",
        "created_at", "started_at", "finished_at", "mean_faces",
    )
    fields = ("name", "owner", "drop_unknown_classes") + readonly_fields
    list_select_related = ("owner",)

    @admin.display(boolean=True, description="trained on")
    def trained_on(self, obj):
        return obj.is_locked

    @admin.display(description="class counts")
    def class_count_table(self, obj):
        rows = format_html_join(
            "", "<tr><td>{}</td><td style='text-align:right'>{}</td></tr>",
            ((name, obj.class_counts.get(name, 0)) for name in CLASSES),
        )
        return format_html("<table class='class-counts'>{}</table>", rows)

    @admin.display(description="mean face per class")
    def mean_faces(self, obj):
        if obj.status != Dataset.Status.READY:
            return "-"
        return format_html_join(
            "", '<figure style="display:inline-block;margin:0 6px;text-align:center">'
            '<img src="/api/datasets/{}/mean/{}.png" width="48" height="48" alt=""><figcaption>{}</figcaption></figure>',
            ((obj.pk, name, name) for name in CLASSES if obj.class_counts.get(name)),
        )

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_locked:
            return False
        return super().has_delete_permission(request, obj)

    def delete_model(self, request, obj):
        services.dataset_delete(dataset=obj)

    def delete_queryset(self, request, queryset):
        for dataset in queryset:
            services.dataset_delete(dataset=dataset)


class QualityFlagFilter(admin.SimpleListFilter):
    title = "quality flag"
    parameter_name = "flag"

    def lookups(self, request, model_admin):
        return [(flag, flag.replace("_", " ")) for flag in quality.FLAGS] + [("none", "no flag")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(flags="")
        if self.value() in quality.FLAGS:
            return queryset.filter(flags__regex=rf"(^|,){self.value()}(,|$)")
        return queryset


def _apply(modeladmin, request, queryset, done: str, **change):
    count = services.dataset_items_update(items=queryset, user=request.user, source="admin", **change)
    modeladmin.message_user(request, f"{count} faces {done}; counts recomputed. The newest version of the dataset records the change.",
                            messages.SUCCESS)


def _relabel_action(index: int, name: str):
    def action(modeladmin, request, queryset):
        _apply(modeladmin, request, queryset, f"relabelled {name}", label=index)

    action.__name__ = f"relabel_to_{name}"
    return admin.action(description=f"Relabel selected faces as {name}")(action)


def _move_action(split: str):
    def action(modeladmin, request, queryset):
        _apply(modeladmin, request, queryset, f"moved to {split}", split=split)

    action.__name__ = f"move_to_{split}"
    return admin.action(description=f"Move selected faces to split {split}")(action)


@admin.action(description="Exclude selected faces from training and evaluation")
def exclude_items(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, "excluded", excluded=True)


@admin.action(description="Include selected faces again")
def include_items(modeladmin, request, queryset):
    _apply(modeladmin, request, queryset, "included", excluded=False)


@admin.register(DatasetItem)
class DatasetItemAdmin(admin.ModelAdmin):
    list_display = ("face", "dataset", "index", "label", "split", "flags", "excluded", "source_name")
    list_filter = ("label", "split", QualityFlagFilter, "excluded", "dataset")
    search_fields = ("source_name", "dataset__name")
    list_select_related = ("dataset",)
    list_per_page = 100
    readonly_fields = ("large_face", "dataset", "index", "source_name", "flags")
    fields = ("large_face", "dataset", "index", "label", "split", "excluded", "source_name", "flags")
    actions = [
        *(_relabel_action(i, name) for i, name in enumerate(CLASSES)),
        *(_move_action(split) for split in MOVE_TO_SPLITS),
        exclude_items,
        include_items,
    ]

    @admin.display(description="face")
    def face(self, obj):
        return thumbnail(obj)

    @admin.display(description="face")
    def large_face(self, obj):
        return thumbnail(obj, 144)

    def has_add_permission(self, request):
        return False  # faces come from imports, where the packed array is written

    def has_delete_permission(self, request, obj=None):
        return False  # rows index the packed array; exclude instead

    def save_model(self, request, obj, form, change):
        changed = {name: form.cleaned_data[name] for name in form.changed_data if name in ("label", "split", "excluded")}
        services.dataset_items_update(items=DatasetItem.objects.filter(pk=obj.pk), user=request.user, source="admin",
                                      **changed)


@admin.register(DatasetVersion)
class DatasetVersionAdmin(admin.ModelAdmin):
    """The chain of versions: read-only, since edits to the faces make them."""

    list_display = ("dataset", "number", "summary", "source", "num_items", "short_hash", "sealed", "created_at")
    list_filter = ("source", "sealed")
    search_fields = ("dataset__name", "summary", "content_hash")
    list_select_related = ("dataset",)

    @admin.display(description="hash")
    def short_hash(self, obj):
        return obj.content_hash[:12]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
