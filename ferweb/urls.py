from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView

from ferweb.accounts.views import admin_login_view
from ferweb.api_docs import ApiDocsView

admin.site.site_header = "FERWeb administration"
admin.site.site_title = "FERWeb admin"
admin.site.index_title = "Records"

urlpatterns = [
    # Browsers and tools ask for /favicon.ico on pages without our <link rel="icon"> (API, schema).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.png"), permanent=False)),
    # The admin's login, throttled like ours; a path of its own ahead of the admin's.
    path("admin/login/", admin_login_view),
    path("admin/", admin.site.urls),
    path("accounts/", include("ferweb.accounts.urls")),
    path("api/auth/", include("ferweb.accounts.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # The docs page: a logged-out browser goes to the login page and comes back (ferweb/api_docs.py).
    path("api/docs/", ApiDocsView.as_view(url_name="schema"), name="api-docs"),
    path("", include("ferweb.datasets.urls")),
    path("", include("ferweb.labeling.urls")),
    path("", include("training_jobs.urls")),
    path("", include("inference.urls")),
    path("", include("frontend.urls")),
    # Media holds user data; each app serves its own files through views that check access.
]

# /api/ answers every error as JSON in the API's one shape, even where no view ran.
handler400 = "ferweb.api_errors.bad_request"
handler404 = "ferweb.api_errors.page_not_found"
handler500 = "ferweb.api_errors.server_error"
