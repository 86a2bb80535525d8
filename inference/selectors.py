"""Reads of the inference app; other users' jobs do not exist for a user (404), staff see all."""
from django.db.models import QuerySet

from ferweb.access import get_visible_or_404, visible_to

from .models import InferenceJob


def job_list_for(user) -> QuerySet:
    return visible_to(user, InferenceJob.objects.select_related("owner"))


def job_get_for(user, pk) -> InferenceJob:
    return get_visible_or_404(user, InferenceJob.objects.select_related("owner"), pk, "No such job.")
