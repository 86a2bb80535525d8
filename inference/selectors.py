"""Reads of the inference app; other users' jobs do not exist for a user (404), staff see all."""
from django.db.models import QuerySet
from django.http import Http404

from .models import InferenceJob


def job_list_for(user) -> QuerySet:
    queryset = InferenceJob.objects.select_related("owner")
    return queryset if user.is_staff else queryset.filter(owner=user)


def job_get_for(user, pk) -> InferenceJob:
    try:
        return job_list_for(user).get(pk=pk)
    except (InferenceJob.DoesNotExist, ValueError, TypeError):
        raise Http404("No such job.")
