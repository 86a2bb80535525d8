"""Dataset pages: the list with the upload form, and the exploratory analysis of one dataset."""
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from fercore.classes import CLASSES

from . import selectors
from .api import DatasetDetailOutput
from .models import Dataset


@login_required
def dataset_list(request):
    datasets = selectors.datasets_for(request.user)
    return render(request, "datasets/list.html", {
        "datasets": datasets,
        "classes": CLASSES,
        "max_upload_mb": settings.FERWEB_MAX_UPLOAD_BYTES // (1024 * 1024),
    })


def _findings(dataset: Dataset) -> list[dict]:
    """The report's quality findings in display order, each with a few example items."""
    quality = dataset.report.get("quality", {})
    blank = quality.get("blank", {})
    within = quality.get("duplicates_within_split", {})
    across = quality.get("duplicates_across_splits", {})
    return [
        {"key": "blank", "title": "Blank or near-constant faces", "count": blank.get("count", 0),
         "help": "Pixels that barely vary: no expression to learn.", "faces": blank.get("items", [])},
        {"key": "duplicates_within_split", "title": "Exact duplicates within a split",
         "count": within.get("extra_copies", 0), "groups": within.get("examples", []),
         "help": f"{within.get('groups', 0)} groups of identical faces in the same split; they over-weight a face."},
        {"key": "duplicates_across_splits", "title": "Exact duplicates across splits",
         "count": across.get("extra_copies", 0), "groups": across.get("examples", []),
         "help": f"{across.get('groups', 0)} groups of identical faces in different splits; they leak test data "
                 "into training."},
    ]


@login_required
def dataset_detail(request, pk):
    dataset = selectors.dataset_get_for(request.user, pk)
    context = {"dataset": dataset, "data": DatasetDetailOutput(dataset).data, "classes": CLASSES}
    if dataset.status == Dataset.Status.READY:
        samples = context["data"]["samples"]
        context.update(
            samples=[(name, samples.get(name, []), dataset.class_counts.get(name, 0)) for name in CLASSES],
            findings=_findings(dataset),
            skipped=dataset.report.get("skipped", {}),
            no_face=dataset.report.get("no_face", {}),
            dropped=dataset.report.get("dropped_classes", {}),
            versions=_versions(dataset),
            flagged=_flagged_sample(dataset),
        )
    return render(request, "datasets/detail.html", context)


def _versions(dataset: Dataset) -> list:
    """The chain, newest first, each version with the runs trained on it (through the reverse relation:
    this app imports no training code)."""
    from .versions import version_chain

    chain = version_chain(dataset)
    for version in chain:
        version.runs = list(version.training_runs.order_by("-created_at", "-id"))
    return chain


def _flagged_sample(dataset: Dataset, n: int = 8) -> list[dict]:
    """The label-error finder's most suspect faces, when a scan succeeded: what the page shows of it."""
    from . import label_issues

    scan = label_issues.scan_of(dataset)
    if scan is None or scan.status != scan.Status.SUCCEEDED:
        return []
    return label_issues.scan_issues(scan, limit=n)


@login_required
def dataset_label_issues(request, pk):
    """The label-error finder: start a scan, follow it, then review the flagged faces one by one."""
    from inference.selectors import model_list_for, shipped_model

    from . import label_issues

    dataset = selectors.dataset_get_for(request.user, pk)
    versions = [
        {"id": v.pk, "version": v.version, "architecture": v.architecture,
         "in_sample": label_issues.trained_on(dataset, v.pk)}
        for v in model_list_for(request.user).order_by("-created_at", "-id")[:50]
    ]
    return render(request, "datasets/label_issues.html", {
        "dataset": dataset, "classes": CLASSES, "versions": versions,
        "finder": {"dataset": dataset.pk, "ready": dataset.status == Dataset.Status.READY,
                   "active_in_sample": label_issues.model_choose(user=request.user, dataset=dataset,
                                                                 model="active").in_sample,
                   "default_in_sample": label_issues.shipped_trained_on(dataset, shipped_model()),
                   "in_sample_warning": label_issues.IN_SAMPLE_WARNING},
    })
