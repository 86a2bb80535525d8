from django.urls import path

from training_jobs import api, views

urlpatterns = [
    path("api/runs/", api.RunListCreateApi.as_view(), name="api-runs"),
    path("api/runs/limits/", api.RunLimitsApi.as_view(), name="api-run-limits"),
    path("api/runs/estimate/", api.RunEstimateApi.as_view(), name="api-run-estimate"),
    path("api/runs/presets/", api.PresetListApi.as_view(), name="api-run-presets"),
    path("api/runs/compare/data/", api.RunCompareDataApi.as_view(), name="api-run-compare-data"),
    path("api/runs/<int:pk>/", api.RunDetailApi.as_view(), name="api-run"),
    path("api/runs/<int:pk>/delete-preview/", api.RunDeletePreviewApi.as_view(), name="api-run-delete-preview"),
    path("api/runs/<int:pk>/cancel/", api.RunCancelApi.as_view(), name="api-run-cancel"),
    path("api/runs/<int:pk>/retrain/", api.RunRetrainApi.as_view(), name="api-run-retrain"),
    path("api/runs/<int:pk>/confusion/", api.RunConfusionCellApi.as_view(), name="api-run-confusion"),
    path("api/runs/<int:pk>/confusion/review/", api.RunConfusionReviewApi.as_view(), name="api-run-confusion-review"),
    path("api/architectures/", api.ArchitectureListApi.as_view(), name="api-architectures"),
    path("api/recipe/", api.RecipeSchemaApi.as_view(), name="api-recipe"),
    path("runs/", views.run_list, name="runs"),
    path("runs/new/", views.run_new, name="run-new"),
    path("runs/compare/", views.run_compare, name="run-compare"),
    path("runs/<int:pk>/", views.run_detail, name="run-detail"),
]
