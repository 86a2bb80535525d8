from django.urls import path

from . import api, views

urlpatterns = [
    path("api/labeling/sets/", api.SetListCreateApi.as_view(), name="api-labeling-sets"),
    path("api/labeling/sets/<int:pk>/", api.SetDetailApi.as_view(), name="api-labeling-set"),
    path("api/labeling/sets/<int:pk>/delete-preview/", api.SetDeletePreviewApi.as_view(),
         name="api-labeling-set-delete-preview"),
    path("api/labeling/sets/<int:pk>/photos/", api.SetPhotosApi.as_view(), name="api-labeling-photos"),
    path("api/labeling/sets/<int:pk>/faces/", api.SetFacesApi.as_view(), name="api-labeling-faces"),
    path("api/labeling/sets/<int:pk>/accept/", api.SetAcceptApi.as_view(), name="api-labeling-accept"),
    path("api/labeling/sets/<int:pk>/undo/", api.SetUndoApi.as_view(), name="api-labeling-undo"),
    path("api/labeling/sets/<int:pk>/create-dataset/", api.SetCreateDatasetApi.as_view(),
         name="api-labeling-create-dataset"),
    path("api/labeling/faces/<int:pk>/", api.FaceApi.as_view(), name="api-labeling-face"),
    path("api/labeling/faces/<int:pk>.png", api.FacePngApi.as_view(), name="api-labeling-face-png"),
    path("labeling/", views.set_list, name="labeling"),
    path("labeling/<int:pk>/", views.set_detail, name="labeling-set"),
]
