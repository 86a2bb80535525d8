"""Who sees what: every user-owned record (datasets, labeling sets, runs, jobs) follows one rule.

Users see their own rows; staff see all; anonymous users see nothing. Rows a user may not see
do not exist for them (404, never 403).
"""
from django.db.models import QuerySet
from django.http import Http404


def visible_to(user, queryset: QuerySet, owner_field: str = "owner") -> QuerySet:
    if not user.is_authenticated:
        return queryset.none()
    return queryset if user.is_staff else queryset.filter(**{owner_field: user})


def get_visible_or_404(user, queryset: QuerySet, pk, message: str):
    """The row with this pk if `user` may see it; else Http404(message)."""
    try:
        found = visible_to(user, queryset).filter(pk=pk).first()
    except (ValueError, TypeError):
        found = None
    if found is None:
        raise Http404(message)
    return found
