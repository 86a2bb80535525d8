"""REST API for datasets. Thin: validate, call one service or selector, serialize."""
import cv2
from django.http import Http404, HttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from ferweb.api_errors import ApiError
from ferweb.core.classes import CLASSES

from . import selectors, services
from .models import Dataset
from .readers import DatasetError


def dataset_data(dataset: Dataset, *, full: bool = True) -> dict:
    data = {
        "id": dataset.pk,
        "name": dataset.name,
        "owner": dataset.owner.username,
        "status": dataset.status,
        "progress": dataset.progress,
        "error": dataset.error,
        "human_readable_error": dataset.human_readable_error,
        "num_items": dataset.num_items,
        "class_counts": dataset.class_counts,
        "split_counts": dataset.split_counts,
        "source_name": dataset.source_name,
        "source_format": dataset.source_format,
        "locked": dataset.is_locked,
        "created_at": dataset.created_at,
        "finished_at": dataset.finished_at,
    }
    if full:
        data["report"] = dataset.report
        data["attempts"] = dataset.attempts
        if dataset.status == Dataset.Status.READY:
            data["samples"] = selectors.dataset_samples(dataset)
            data["urls"] = {
                "item_png": f"/api/datasets/{dataset.pk}/items/{{index}}.png",
                "mean_png": f"/api/datasets/{dataset.pk}/mean/{{class}}.png",
            }
    return data


class DatasetListCreateApi(APIView):
    parser_classes = [MultiPartParser, FormParser]

    class DatasetUploadSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        file = serializers.FileField(allow_empty_file=True, help_text="A zip of class folders (optionally in split folders) or fer2013.csv.")
        drop_unknown_classes = serializers.BooleanField(required=False, default=False)

    @extend_schema(operation_id="datasets_list", responses={200: OpenApiResponse(description="The datasets you may see, newest first.")})
    def get(self, request):
        return Response([dataset_data(d, full=False) for d in selectors.datasets_for(request.user)])

    @extend_schema(
        request={"multipart/form-data": DatasetUploadSerializer},
        responses={201: OpenApiResponse(description="{id, status}: the import runs in the background."),
                   400: OpenApiResponse(description="{detail, code}: the file is refused; nothing is kept."),
                   413: OpenApiResponse(description="The upload is over FERWEB_MAX_UPLOAD_BYTES.")},
    )
    def post(self, request):
        if not request.META.get("CONTENT_LENGTH") and "HTTP_TRANSFER_ENCODING" in request.META:
            # Django parses no multipart body without a length: say so instead of "no file".
            raise ApiError("length_required", "Length required: send the upload with a Content-Length header "
                           "(browsers and curl -F do).", status=status.HTTP_411_LENGTH_REQUIRED)
        serializer = self.DatasetUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        try:
            dataset = services.dataset_create(
                owner=request.user,
                name=serializer.validated_data.get("name", ""),
                upload=upload,
                drop_unknown_classes=serializer.validated_data["drop_unknown_classes"],
            )
        except DatasetError as error:
            return Response({"detail": error.message, "code": error.code}, status=status.HTTP_400_BAD_REQUEST)
        return Response({"id": dataset.pk, "status": dataset.status}, status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The dataset with counts and its import report.")})
    def get(self, request, pk):
        return Response(dataset_data(selectors.dataset_get_for(request.user, pk)))

    @extend_schema(responses={204: None, 409: OpenApiResponse(description="A run trained on it: read-only.")})
    def delete(self, request, pk):
        dataset = selectors.dataset_get_for(request.user, pk)
        try:
            services.dataset_delete(dataset=dataset)
        except services.DatasetLockedError as error:
            return Response({"detail": str(error), "code": "locked"}, status=status.HTTP_409_CONFLICT)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PngRenderer(BaseRenderer):
    media_type = "image/png"
    format = "png"

    def render(self, data, accepted_media_type=None, renderer_context=None):
        return data


def png_response(face) -> HttpResponse:
    ok, encoded = cv2.imencode(".png", face)
    response = HttpResponse(encoded.tobytes(), content_type="image/png")
    response["Cache-Control"] = "private, max-age=300"
    return response


class DatasetItemPngApi(APIView):
    """One stored face as a 48x48 PNG (for thumbnails)."""

    renderer_classes = [PngRenderer, JSONRenderer]

    @extend_schema(responses={(200, "image/png"): OpenApiResponse(description="48x48 grayscale PNG")})
    def get(self, request, pk, index):
        dataset = selectors.dataset_get_for(request.user, pk)
        try:
            return png_response(selectors.dataset_face(dataset, index))
        except (IndexError, FileNotFoundError):
            raise Http404(f"Dataset {pk} has no face {index}.") from None


class DatasetMeanFacePngApi(APIView):
    """The average face of one class as a 48x48 PNG."""

    renderer_classes = [PngRenderer, JSONRenderer]

    @extend_schema(responses={(200, "image/png"): OpenApiResponse(description="48x48 grayscale PNG")})
    def get(self, request, pk, class_name):
        dataset = selectors.dataset_get_for(request.user, pk)
        if class_name not in CLASSES:
            raise Http404(f"No class {class_name!r}; classes: {', '.join(CLASSES)}.")
        try:
            return png_response(selectors.dataset_mean_face(dataset, class_name))
        except FileNotFoundError:
            raise Http404(f"Dataset {pk} has no mean faces yet.") from None
