"""REST: POST /api/predict/, the batch/video jobs under /api/jobs/ and the model registry under /api/models/."""
from django.conf import settings
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ferweb.api_errors import ApiError, error_body
from ferweb.deletion import DeletePreviewOutput
from fercore.images import ALLOWED_NAMES, ImageDecodeError

from . import selectors, serving, services
from .engine import ModelUnavailable
from .models import InferenceJob, ModelVersion


class PredictView(APIView):
    """Every face in one photo, left to right, with the label and all class probabilities."""

    parser_classes = [MultiPartParser, FormParser]

    class PredictInputSerializer(serializers.Serializer):
        image = serializers.FileField(help_text=f"One photo: {ALLOWED_NAMES}.")

    @extend_schema(
        request={"multipart/form-data": PredictInputSerializer},
        parameters=[OpenApiParameter("annotate", bool, description="Also return the image with boxes, as base64 PNG.")],
        responses={
            200: inline_serializer("Prediction", {
                "model_version": serializers.CharField(),
                "faces": serializers.ListField(child=serializers.DictField()),
                "message": serializers.CharField(),
                "timing_ms": serializers.DictField(child=serializers.FloatField()),
                "annotated_image": serializers.CharField(required=False),
            }),
            400: OpenApiResponse(description="{detail, code}: no image, or refused before or while decoding "
                                             "(not_an_image, unsupported_format, too_many_pixels, truncated)."),
            413: OpenApiResponse(description="{detail, code}: over FERWEB_MAX_IMAGE_BYTES (too_large)."),
            503: OpenApiResponse(description="{detail, code}: no model (no_model) or too many requests (busy)."),
        },
    )
    def post(self, request):
        upload = request.FILES.get("image")
        if upload is None:
            raise ApiError("missing_image", f"Send the photo as multipart field 'image' ({ALLOWED_NAMES}).", status=400)
        if upload.size > settings.FERWEB_MAX_IMAGE_BYTES:
            limit = settings.FERWEB_MAX_IMAGE_BYTES / (1024 * 1024)
            raise ApiError("too_large", f"The image is {upload.size:,} bytes; the limit is {limit:g} MB.", status=413)
        data = upload.read()
        active = selectors.active_model_for(request.user)
        try:
            with serving.admission():
                prediction = serving.predict_bytes(data, active.path)
                annotated = serving.annotate(data, prediction.faces) if request.query_params.get("annotate") in ("1", "true") else None
        except ImageDecodeError as exc:
            raise ApiError(exc.code, exc.message, status=400) from exc
        except ModelUnavailable as exc:
            raise ApiError(exc.code, str(exc), status=503) from exc
        except serving.Busy as exc:
            raise ApiError(exc.code, str(exc), status=503) from exc
        body = {
            "model_version": active.version,
            "faces": prediction.faces,
            "message": prediction.message,
            "timing_ms": prediction.timing_ms,
        }
        if annotated is not None:
            body["annotated_image"] = annotated
        return Response(body)


class InferenceJobSerializer(serializers.ModelSerializer):
    results = serializers.SerializerMethodField()

    class Meta:
        model = InferenceJob
        fields = ["id", "kind", "status", "progress", "error", "human_readable_error", "source_name", "every_k",
                  "model_version", "total", "processed", "num_faces", "summary", "created_at", "started_at",
                  "finished_at", "results"]

    def get_results(self, job) -> dict:
        if job.status != InferenceJob.Status.SUCCEEDED:
            return {}
        return {"csv": f"/api/jobs/{job.pk}/results.csv", "json": f"/api/jobs/{job.pk}/results.json"}


class JobListCreateView(APIView):
    parser_classes = [MultiPartParser, FormParser]

    class JobUploadSerializer(serializers.Serializer):
        file = serializers.FileField(help_text="A .zip of photos or a video (mp4, webm, avi, ...).")
        every_k = serializers.IntegerField(required=False, default=1, min_value=1, max_value=1000,
                                           help_text="Video: classify every k-th frame.")

    @extend_schema(responses={200: InferenceJobSerializer(many=True)})
    def get(self, request):
        jobs = selectors.job_list_for(request.user)[:100]
        return Response(InferenceJobSerializer(jobs, many=True).data)

    @extend_schema(request={"multipart/form-data": JobUploadSerializer}, responses={201: InferenceJobSerializer})
    def post(self, request):
        upload = request.FILES.get("file")
        if upload is None:
            raise ApiError("missing_file", "Send a .zip of photos or a video as multipart field 'file'.", status=400)
        serializer = self.JobUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            job = services.job_create(owner=request.user, upload=upload, every_k=serializer.validated_data["every_k"])
        except services.JobInputError as exc:
            raise ApiError(exc.code, exc.message, status=400) from exc
        return Response(InferenceJobSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetailView(APIView):
    @extend_schema(responses={200: InferenceJobSerializer, 404: OpenApiResponse(description="No such job (or not yours).")})
    def get(self, request, pk):
        return Response(InferenceJobSerializer(selectors.job_get_for(request.user, pk)).data)

    @extend_schema(
        description="Deletes the job: a queued or running job is cancelled first, then its upload, its "
                    "results and its record are removed.",
        responses={204: OpenApiResponse(description="Deleted."),
                   404: OpenApiResponse(description="{detail, code}: no such job (or not yours).")},
    )
    def delete(self, request, pk):
        services.job_delete(job=selectors.job_get_for(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class JobDeletePreviewView(APIView):
    @extend_schema(responses=DeletePreviewOutput,
                   description="What DELETE on the job would do: the sentence to confirm and the bytes it frees.")
    def get(self, request, pk):
        preview = services.job_delete_preview(job=selectors.job_get_for(request.user, pk))
        return Response(DeletePreviewOutput(preview).data)


class JobCancelView(APIView):
    @extend_schema(request=None, responses={200: InferenceJobSerializer})
    def post(self, request, pk):
        job = services.job_cancel(job=selectors.job_get_for(request.user, pk))
        return Response(InferenceJobSerializer(job).data)


class JobResultsView(APIView):
    """results.csv or results.json of a finished job, streamed from disk."""

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request, pk, fmt):
        job = selectors.job_get_for(request.user, pk)
        path = job.csv_path if fmt == "csv" else job.json_path
        if job.status != InferenceJob.Status.SUCCEEDED or not path.exists():
            raise Http404("The results are not ready.")
        content_type = "text/csv" if fmt == "csv" else "application/json"
        stem = f"job-{job.pk}-{job.source_name.rsplit('.', 1)[0]}"[:100]
        return FileResponse(open(path, "rb"), content_type=content_type, as_attachment=True, filename=f"{stem}.{fmt}")


# ---------------------------------------------------------------- the model registry (/api/models/)


def model_version_data(version: ModelVersion | None, *, active_id: int | None = None) -> dict | None:
    if version is None:
        return None
    return {
        "id": version.pk,
        "run": version.run_id,
        "owner": version.owner.username,
        "architecture": version.architecture,
        "version": version.version,
        "metrics": version.metrics,
        "param_count": version.param_count,
        "latency_ms": version.latency_ms,
        "parity_max_abs_diff": version.parity_max_abs_diff,
        "is_site_default": version.is_site_default,
        "is_active": active_id == version.pk,
        "created_at": version.created_at,
        "onnx_url": f"/api/models/{version.pk}/onnx/",
    }


SHIPPED_ONNX_URL = "/api/models/default/onnx/"


def shipped_model_data(*, active_id: int | None, site_default_set: bool) -> dict:
    """The shipped model in the shape of a version: no id, no run, its card's numbers."""
    shipped = selectors.shipped_model()
    return {
        "id": None,
        "run": None,
        "owner": None,
        "shipped": True,
        "architecture": shipped.architecture,
        "version": shipped.version,
        "metrics": dict(shipped.metrics),
        "param_count": shipped.param_count,
        "latency_ms": shipped.latency_ms,
        "is_site_default": not site_default_set,
        "is_active": active_id is None,
        "available": shipped.exists,
        "onnx_url": SHIPPED_ONNX_URL,
    }


class ModelVersionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    run = serializers.IntegerField(allow_null=True)
    owner = serializers.CharField()
    architecture = serializers.CharField()
    version = serializers.CharField()
    metrics = serializers.DictField(help_text="Held-out metrics without the curves.")
    param_count = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True, help_text="Median ONNX Runtime CPU latency at batch 1.")
    parity_max_abs_diff = serializers.FloatField(allow_null=True)
    is_site_default = serializers.BooleanField()
    is_active = serializers.BooleanField(help_text="Serves the requesting user's predictions.")
    created_at = serializers.DateTimeField()
    onnx_url = serializers.CharField()


class ShippedModelOutput(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="Always null: the shipped model is no version.")
    run = serializers.IntegerField(allow_null=True)
    owner = serializers.CharField(allow_null=True)
    shipped = serializers.BooleanField(help_text="Always true: the model FERWeb ships with.")
    architecture = serializers.CharField()
    version = serializers.CharField(help_text="From its model card (fer.version), as predictions name it; `default` without a card.")
    metrics = serializers.DictField(help_text="accuracy, macro_f1, macro_auc, micro_auc from its model card.")
    param_count = serializers.IntegerField(allow_null=True)
    latency_ms = serializers.FloatField(allow_null=True, help_text="Median ONNX Runtime CPU latency at batch 1.")
    is_site_default = serializers.BooleanField(help_text="True while no version is the site default.")
    is_active = serializers.BooleanField(help_text="Serves the requesting user's predictions.")
    available = serializers.BooleanField(help_text="False when this installation ships no model file.")
    onnx_url = serializers.CharField()


FIELD_ERRORS = OpenApiTypes.OBJECT


class ModelListApi(APIView):
    @extend_schema(operation_id="models_list", responses=ModelVersionOutput(many=True))
    def get(self, request):
        active = selectors.active_model_for(request.user)
        versions = selectors.model_list_for(request.user)
        return Response([model_version_data(v, active_id=active.model_version_id) for v in versions])


def _model_for(request, pk: str) -> ModelVersion | None:
    """`active` resolves to the requesting user's active version, `default` to the shipped model (None)."""
    if pk == "default":
        return None
    if pk == "active":
        # active_model_for resolves only to versions the user may see; model_get_for checks it again.
        active = selectors.active_model_for(request.user)
        return selectors.model_get_for(request.user, active.model_version_id) if active.model_version_id else None
    if not pk.isdigit():
        raise Http404("No such model version.")
    return selectors.model_get_for(request.user, int(pk))


def _shipped_response(user) -> Response:
    active = selectors.active_model_for(user)
    site_default_set = selectors.site_default_version() is not None
    return Response(shipped_model_data(active_id=active.model_version_id, site_default_set=site_default_set))


class ModelDetailApi(APIView):
    @extend_schema(operation_id="models_retrieve", responses=ModelVersionOutput,
                   description="`active` in place of the id: the requesting user's active version (the "
                               "ShippedModel shape of GET /api/models/default/ while the shipped model serves).")
    def get(self, request, pk):
        version = _model_for(request, pk)
        if version is None:
            return _shipped_response(request.user)
        active = selectors.active_model_for(request.user)
        return Response(model_version_data(version, active_id=active.model_version_id))


class ShippedModelApi(APIView):
    @extend_schema(operation_id="models_default_retrieve", responses=ShippedModelOutput,
                   description="The model FERWeb ships with (inference/models/default.onnx), described by its "
                               "model card. It serves whoever has no active version and there is no site default.")
    def get(self, request):
        return _shipped_response(request.user)


class ModelOnnxApi(APIView):
    @extend_schema(operation_id="models_onnx", responses={(200, "application/octet-stream"): OpenApiTypes.BINARY},
                   description="The ONNX file; `active` in place of the id: the active one (the shipped default "
                               "model when none is chosen).")
    def get(self, request, pk):
        version = _model_for(request, pk)
        path = version.path if version else settings.FERWEB_DEFAULT_MODEL
        filename = f"{version.version}.onnx" if version else "default.onnx"
        if not path.exists():
            raise Http404("The model file is missing.")
        return FileResponse(open(path, "rb"), as_attachment=True, filename=filename,
                            content_type="application/octet-stream")


def staff_only() -> Response:
    return Response(error_body("staff_only", "Only staff can set the site default model.",
                               {"site_default": ["only staff can set the site default model"]}),
                    status=status.HTTP_403_FORBIDDEN)


class ModelActivateApi(APIView):
    class InputSerializer(serializers.Serializer):
        site_default = serializers.BooleanField(required=False, default=False)

        class Meta:
            ref_name = "ModelActivate"

    @extend_schema(operation_id="models_activate", request=InputSerializer, responses=ModelVersionOutput)
    def post(self, request, pk):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        version = selectors.model_get_for(request.user, pk)
        site_default = serializer.validated_data["site_default"]
        if site_default and not request.user.is_staff:
            return staff_only()
        services.model_activate(user=request.user, model_version=version, site_default=site_default)
        active = selectors.active_model_for(request.user)
        return Response(model_version_data(version, active_id=active.model_version_id))


class ShippedModelActivateApi(APIView):
    class InputSerializer(serializers.Serializer):
        site_default = serializers.BooleanField(
            required=False, default=False,
            help_text="Staff only: unset the site default, so the shipped model serves everyone without a choice.")

        class Meta:
            ref_name = "ShippedModelActivate"

    @extend_schema(
        operation_id="models_default_activate", request=InputSerializer,
        responses={200: ShippedModelOutput, 400: FIELD_ERRORS, 403: FIELD_ERRORS, 404: OpenApiTypes.OBJECT},
        description="Back to the shipped model: it serves the requesting user's predictions, even while a "
                    'version is the site default; with `{"site_default": true}` staff unset the site default '
                    "instead (the shipped model then serves everyone without a choice of their own). 404 when "
                    "this installation ships no model file.",
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        site_default = serializer.validated_data["site_default"]
        if site_default and not request.user.is_staff:
            return staff_only()
        if not selectors.shipped_model().exists:
            return Response({"detail": "this installation ships no default model; make a model version active"},
                            status=status.HTTP_404_NOT_FOUND)
        services.model_activate(user=request.user, model_version=None, site_default=site_default)
        return _shipped_response(request.user)
