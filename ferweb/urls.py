from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path, re_path
from django.views.generic import RedirectView
from django.views.static import serve
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    # Browsers and tools ask for /favicon.ico on pages without our <link rel="icon"> (API, schema).
    path("favicon.ico", RedirectView.as_view(url=static("favicon.png"), permanent=False)),
    path("admin/", admin.site.urls),
    path("accounts/", include("ferweb.accounts.urls")),
    path("api/auth/", include("ferweb.accounts.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("", include("ferweb.datasets.urls")),
    path("", include("ferweb.labeling.urls")),
    path("", include("training_jobs.urls")),
    path("", include("inference.urls")),
    path("", include("frontend.urls")),
    # Media holds user data; each app serves its own files through views that check access.
]
