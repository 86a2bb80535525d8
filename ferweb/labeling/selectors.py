"""Reads of labeling: who sees which sets and faces, and the counts the pages show."""
from django.db.models import Count, F, QuerySet
from django.http import Http404

from ferweb.access import get_visible_or_404, visible_to
from fercore.classes import CLASSES

from .models import LabelingFace, LabelingSet


def sets_for(user) -> QuerySet[LabelingSet]:
    """The sets a user may see: their own; staff see all."""
    return visible_to(user, LabelingSet.objects.select_related("owner"))


def set_get_for(user, pk) -> LabelingSet:
    """The set, or 404 when it does not exist or belongs to someone else."""
    return get_visible_or_404(user, LabelingSet.objects.select_related("owner"), pk, f"No labeling set {pk}.")


def face_get_for(user, pk) -> LabelingFace:
    queryset = LabelingFace.objects.select_related("labeling_set")
    if not user.is_staff:
        queryset = queryset.filter(labeling_set__owner=user)
    face = queryset.filter(pk=pk).first() if user.is_authenticated else None
    if face is None:
        raise Http404(f"No face {pk}.")
    return face


# The orders of the review queue: name -> (label on the page, ORDER BY). Faces without a proposal
# (no model, or none for that face) come last in every uncertainty order; upload order breaks ties.
FACE_ORDERS = {
    "upload": ("upload order", ["id"]),
    "least_confident": ("least confident first", [F("proposed_probability").asc(nulls_last=True), "id"]),
    "entropy": ("most uncertain first (entropy)", [F("entropy").desc(nulls_last=True), "id"]),
    "most_confident": ("most confident first", [F("proposed_probability").desc(nulls_last=True), "id"]),
}


def faces_of(
    labeling_set: LabelingSet, status: str | None = None, *, order: str = "upload", predicted: str | None = None
) -> QuerySet[LabelingFace]:
    """Faces without their PNG bytes, in `order` (a FACE_ORDERS key); `status` and `predicted`
    (the proposed class) filter, None for all."""
    queryset = LabelingFace.objects.filter(labeling_set_id=labeling_set.pk).defer("crop_png")
    if status:
        queryset = queryset.filter(status=status)
    if predicted:
        queryset = queryset.filter(proposed_label=CLASSES.index(predicted))
    return queryset.order_by(*FACE_ORDERS[order][1])


def status_counts(labeling_set: LabelingSet) -> dict[str, int]:
    counts = {s.value: 0 for s in LabelingFace.Status}
    for row in LabelingFace.objects.filter(labeling_set_id=labeling_set.pk).values("status").annotate(n=Count("id")):
        counts[row["status"]] = row["n"]
    counts["all"] = sum(counts.values())
    return counts


def review_counts(labeling_set: LabelingSet) -> dict[str, dict[str, int]]:
    """{counts: faces by review status, class_counts: confirmed faces by class}: where a review leaves the set."""
    return {"counts": status_counts(labeling_set), "class_counts": confirmed_class_counts(labeling_set)}


def confirmed_class_counts(labeling_set: LabelingSet) -> dict[str, int]:
    """{class: confirmed faces}, every class present."""
    counts = {name: 0 for name in CLASSES}
    rows = (
        LabelingFace.objects.filter(labeling_set_id=labeling_set.pk, status=LabelingFace.Status.CONFIRMED)
        .values("confirmed_label").annotate(n=Count("id"))
    )
    for row in rows:
        counts[CLASSES[row["confirmed_label"]]] = row["n"]
    return counts
