from django.urls import path
from django.views.generic import RedirectView

from frontend import views

urlpatterns = [
    path("", RedirectView.as_view(url="/datasets/", permanent=False), name="home"),
    path("static-lib/plotly.min.js", views.plotly_js, name="plotly-js"),
]
