"""REST: POST /api/predict/ and the batch/video jobs under /api/jobs/."""
from django.conf import settings
from django.http import FileResponse, Http404
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ferweb.api_errors import ApiError
from ferweb.core.images import ALLOWED_NAMES, ImageDecodeError
from training_jobs.selectors import active_model_for

from . import selectors, serving, services
from .engine import ModelUnavailable
from .models import InferenceJob


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
        active = active_model_for(request.user)
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
