"""The API's documentation page (Swagger UI over /api/schema/).

The schema and every operation need a login; the page itself is where people arrive from a link,
so a logged-out visitor is sent to the login page and brought back here afterwards, rather than
shown a bare 401.
"""
from django.contrib.auth.views import redirect_to_login
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.permissions import AllowAny


class ApiDocsView(SpectacularSwaggerView):
    permission_classes = [AllowAny]  # the check is below: a redirect to the login page, not a 401

    @extend_schema(exclude=True)  # a page for people, not an operation of the API
    def get(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        return super().get(request, *args, **kwargs)
