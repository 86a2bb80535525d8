"""Labeling pages: the list of sets with the upload form, and the review grid of one set."""
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Q
from django.shortcuts import render
from django.utils.http import urlencode

from fercore.classes import CLASSES

from . import selectors
from .api import LabelingSetDetailOutput
from .models import LabelingFace

FACES_PER_PAGE = 120
FILTERS = ("pending", "confirmed", "skipped", "rejected", "all")


@login_required
def set_list(request):
    return render(request, "labeling/list.html", {
        "sets": selectors.sets_for(request.user).annotate(
            num_faces=Count("faces"), num_confirmed=Count("faces", filter=Q(faces__status=LabelingFace.Status.CONFIRMED))
        ),
        "max_upload_mb": settings.FERWEB_MAX_UPLOAD_BYTES // (1024 * 1024),
    })


@login_required
def set_detail(request, pk):
    labeling_set = selectors.set_get_for(request.user, pk)
    wanted = request.GET.get("status", "pending")
    if wanted not in FILTERS:
        wanted = "pending"
    order = request.GET.get("order", "upload")
    if order not in selectors.FACE_ORDERS:
        order = "upload"
    predicted = request.GET.get("predicted", "")
    if predicted not in CLASSES:
        predicted = ""
    faces = selectors.faces_of(labeling_set, None if wanted == "all" else wanted, order=order,
                               predicted=predicted or None)
    page = Paginator(faces, FACES_PER_PAGE).get_page(request.GET.get("page"))
    data = LabelingSetDetailOutput(labeling_set).data
    # The queue's order and class filter travel with the status filters and the pager.
    keep = urlencode({k: v for k, v in (("order", order), ("predicted", predicted)) if v and v != "upload"})
    from ferweb.datasets.models import Dataset

    return render(request, "labeling/detail.html", {
        "own_datasets": Dataset.objects.filter(owner=request.user, status=Dataset.Status.READY,
                                               archived_at__isnull=True).only("id", "name", "num_items")[:100],
        "set": labeling_set,
        "data": data,
        "classes": CLASSES,
        "class_keys": [(i + 1, name) for i, name in enumerate(CLASSES)],
        "filter": wanted,
        "order": order,
        "orders": [(name, label) for name, (label, _) in selectors.FACE_ORDERS.items()],
        "predicted": predicted,
        "keep": f"&{keep}" if keep else "",
        "done": data["counts"]["all"] - data["counts"]["pending"],
        "filters": [(name, data["counts"][name]) for name in FILTERS],
        "page": page,
        "faces": page.object_list,
        "statuses": LabelingFace.Status,
    })
