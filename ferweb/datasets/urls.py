from django.urls import path

from . import api, views

urlpatterns = [
    path("api/datasets/", api.DatasetListCreateApi.as_view(), name="api-datasets"),
    path("api/datasets/<int:pk>/", api.DatasetDetailApi.as_view(), name="api-dataset"),
    path("api/datasets/<int:pk>/delete-preview/", api.DatasetDeletePreviewApi.as_view(),
         name="api-dataset-delete-preview"),
    path("api/datasets/<int:pk>/export.zip", api.DatasetExportApi.as_view(), {"export_format": "zip"},
         name="api-dataset-export-zip"),
    path("api/datasets/<int:pk>/export.csv", api.DatasetExportApi.as_view(), {"export_format": "csv"},
         name="api-dataset-export-csv"),
    path("api/datasets/<int:pk>/versions/", api.DatasetVersionsApi.as_view(), name="api-dataset-versions"),
    path("api/datasets/<int:pk>/versions/diff/", api.DatasetVersionDiffApi.as_view(), name="api-dataset-versions-diff"),
    path("api/datasets/<int:pk>/items/<int:index>.png", api.DatasetItemPngApi.as_view(), name="api-dataset-item-png"),
    path("api/datasets/<int:pk>/items/<int:item>/", api.DatasetItemDecisionApi.as_view(), name="api-dataset-item"),
    path("api/datasets/<int:pk>/label-issues/", api.LabelIssuesApi.as_view(), name="api-dataset-label-issues"),
    path("api/datasets/<int:pk>/label-issues/estimate/", api.LabelIssuesEstimateApi.as_view(),
         name="api-dataset-label-issues-estimate"),
    path("datasets/<int:pk>/label-issues/", views.dataset_label_issues, name="dataset-label-issues"),
    path("api/datasets/<int:pk>/mean/<str:class_name>.png", api.DatasetMeanFacePngApi.as_view(),
         name="api-dataset-mean-png"),
    path("datasets/", views.dataset_list, name="datasets"),
    path("datasets/<int:pk>/", views.dataset_detail, name="dataset-detail"),
]
