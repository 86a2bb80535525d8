from django.urls import path, re_path

from . import api, views

urlpatterns = [
    path("api/predict/", api.PredictView.as_view(), name="api-predict"),
    path("api/models/", api.ModelListApi.as_view(), name="api-models"),
    # The shipped model's own routes come before <str:pk>, which would read "default" as an id.
    path("api/models/default/", api.ShippedModelApi.as_view(), name="api-model-default"),
    path("api/models/default/activate/", api.ShippedModelActivateApi.as_view(), name="api-model-default-activate"),
    path("api/models/<str:pk>/", api.ModelDetailApi.as_view(), name="api-model"),
    path("api/models/<str:pk>/onnx/", api.ModelOnnxApi.as_view(), name="api-model-onnx"),
    path("api/models/<int:pk>/activate/", api.ModelActivateApi.as_view(), name="api-model-activate"),
    path("api/jobs/", api.JobListCreateView.as_view(), name="api-jobs"),
    path("api/jobs/<int:pk>/", api.JobDetailView.as_view(), name="api-job"),
    path("api/jobs/<int:pk>/delete-preview/", api.JobDeletePreviewView.as_view(), name="api-job-delete-preview"),
    path("api/jobs/<int:pk>/cancel/", api.JobCancelView.as_view(), name="api-job-cancel"),
    re_path(r"^api/jobs/(?P<pk>\d+)/results\.(?P<fmt>csv|json)$", api.JobResultsView.as_view(), name="api-job-results"),
    path("models/", views.model_list_page, name="models"),
    path("predict/", views.predict_page, name="predict"),
    path("webcam/", views.webcam_page, name="webcam"),
    path("jobs/", views.job_list_page, name="jobs"),
    path("jobs/<int:pk>/", views.job_detail_page, name="job"),
]
