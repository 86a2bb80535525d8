from django.urls import path, re_path

from . import api, views

urlpatterns = [
    path("api/predict/", api.PredictView.as_view(), name="api-predict"),
    path("api/jobs/", api.JobListCreateView.as_view(), name="api-jobs"),
    path("api/jobs/<int:pk>/", api.JobDetailView.as_view(), name="api-job"),
    path("api/jobs/<int:pk>/cancel/", api.JobCancelView.as_view(), name="api-job-cancel"),
    re_path(r"^api/jobs/(?P<pk>\d+)/results\.(?P<fmt>csv|json)$", api.JobResultsView.as_view(), name="api-job-results"),
    path("predict/", views.predict_page, name="predict"),
    path("webcam/", views.webcam_page, name="webcam"),
    path("jobs/", views.job_list_page, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail_page, name="job"),
]
