"""REST API for labeling under /api/labeling/. Thin: validate, call one service or selector, serialize."""
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from ferweb.core.classes import CLASSES
from ferweb.datasets.api import PngRenderer

from . import selectors, services
from .models import LabelingFace, LabelingSet
from .services import LabelingError

DEFAULT_PAGE = 200
MAX_PAGE = 1000


def set_data(labeling_set: LabelingSet, *, full: bool = True) -> dict:
    data = {
        "id": labeling_set.pk,
        "name": labeling_set.name,
        "owner": labeling_set.owner.username,
        "status": labeling_set.status,
        "progress": labeling_set.progress,
        "error": labeling_set.error,
        "human_readable_error": labeling_set.human_readable_error,
        "photos_total": labeling_set.photos_total,
        "photos_done": labeling_set.photos_done,
        "created_at": labeling_set.created_at,
        "counts": selectors.status_counts(labeling_set),
    }
    if full:
        data["report"] = labeling_set.report
        data["class_counts"] = selectors.confirmed_class_counts(labeling_set)
        data["datasets"] = [
            {"id": d.pk, "name": d.name, "status": d.status, "num_items": d.num_items, "url": f"/datasets/{d.pk}/"}
            for d in labeling_set.datasets.order_by("-created_at")
        ]
    return data


def face_data(face: LabelingFace) -> dict:
    return {
        "id": face.pk,
        "set": face.labeling_set_id,
        "source_name": face.source_name,
        "box": face.box,
        "status": face.status,
        "proposed_label": face.proposed_class,
        "proposed_probability": face.proposed_probability,
        "probabilities": face.probabilities,
        "model_version": face.model_version,
        "confirmed_label": face.confirmed_class,
        "crop_url": f"/api/labeling/faces/{face.pk}.png",
    }


def refused(error: LabelingError, http_status=status.HTTP_400_BAD_REQUEST) -> Response:
    return Response({"detail": error.message, "code": error.code}, status=http_status)


def uploaded_files(request) -> list:
    """Every file sent as `files` (several) or `file` (one)."""
    return [*request.FILES.getlist("files"), *request.FILES.getlist("file")]


class LabelingUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    files = serializers.ListField(
        child=serializers.FileField(allow_empty_file=True), required=False,
        help_text="Photos (JPEG, PNG, WebP, BMP) and/or zips of photos; repeat the field for several.",
    )


class UploadParsing:
    """Django's own upload refusals (too many files, too much form data) answered as 400 with the reason."""

    parser_classes = [MultiPartParser, FormParser]

    def files_or_error(self, request):
        try:
            return uploaded_files(request), None
        except TooManyFilesSent:
            return None, Response(
                {"detail": "Too many files in one upload: send at most 100 photos at a time, or put them in a zip.",
                 "code": "too_many_files"}, status=status.HTTP_400_BAD_REQUEST)
        except RequestDataTooBig:
            return None, Response({"detail": "The form data is too large.", "code": "too_large"}, status=400)


class SetListCreateApi(UploadParsing, APIView):
    @extend_schema(operation_id="labeling_sets_list", responses={200: OpenApiResponse(description="Your sets, newest first.")})
    def get(self, request):
        return Response([set_data(s, full=False) for s in selectors.sets_for(request.user)])

    @extend_schema(
        request={"multipart/form-data": LabelingUploadSerializer},
        responses={201: OpenApiResponse(description="{id, status}: faces are found and classified in the background."),
                   400: OpenApiResponse(description="{detail, code}: no files, or too many.")},
    )
    def post(self, request):
        files, error = self.files_or_error(request)
        if error:
            return error
        try:
            labeling_set = services.labeling_set_create(
                owner=request.user, name=request.data.get("name", ""), uploads=files
            )
        except LabelingError as error:
            return refused(error)
        return Response(
            {"id": labeling_set.pk, "status": labeling_set.status, "photos_total": labeling_set.photos_total},
            status=status.HTTP_201_CREATED,
        )


class SetDetailApi(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="The set with progress, counts and its report.")})
    def get(self, request, pk):
        return Response(set_data(selectors.set_get_for(request.user, pk)))

    @extend_schema(responses={204: None})
    def delete(self, request, pk):
        services.labeling_set_delete(labeling_set=selectors.set_get_for(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SetPhotosApi(UploadParsing, APIView):
    @extend_schema(
        request={"multipart/form-data": LabelingUploadSerializer},
        responses={202: OpenApiResponse(description="{id, status, added}: processing is queued."),
                   400: OpenApiResponse(description="{detail, code}: no files, or too many.")},
    )
    def post(self, request, pk):
        labeling_set = selectors.set_get_for(request.user, pk)
        files, error = self.files_or_error(request)
        if error:
            return error
        try:
            added = services.labeling_photos_add(labeling_set=labeling_set, uploads=files)
        except LabelingError as error:
            return refused(error)
        labeling_set.refresh_from_db()
        return Response({"id": labeling_set.pk, "status": labeling_set.status, "added": added},
                        status=status.HTTP_202_ACCEPTED)


class SetFacesApi(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=[s.value for s in LabelingFace.Status], required=False),
            OpenApiParameter("offset", int, required=False), OpenApiParameter("limit", int, required=False),
        ],
        responses={200: OpenApiResponse(description="{count, results: [face]} in upload order.")},
    )
    def get(self, request, pk):
        labeling_set = selectors.set_get_for(request.user, pk)
        wanted = request.query_params.get("status") or None
        choices = [s.value for s in LabelingFace.Status]
        if wanted is not None and wanted not in choices:
            return Response({"detail": f"Unknown status {wanted!r}: use one of {', '.join(choices)}.",
                             "code": "bad_status"}, status=400)
        try:
            offset = max(0, int(request.query_params.get("offset", 0)))
            limit = min(MAX_PAGE, max(1, int(request.query_params.get("limit", DEFAULT_PAGE))))
        except ValueError:
            return Response({"detail": "offset and limit are whole numbers.", "code": "bad_paging"}, status=400)
        faces = selectors.faces_of(labeling_set, wanted)
        return Response({"count": faces.count(), "results": [face_data(f) for f in faces[offset:offset + limit]]})


class FaceApi(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    class LabelingFaceUpdateSerializer(serializers.Serializer):
        label = serializers.CharField(required=False, help_text=f"Confirms the face with this class: {', '.join(CLASSES)}.")
        status = serializers.CharField(required=False, help_text="confirmed (accepts the proposal), skipped or pending.")

    @extend_schema(responses={200: OpenApiResponse(description="The face.")})
    def get(self, request, pk):
        return Response(face_data(selectors.face_get_for(request.user, pk)))

    @extend_schema(request=LabelingFaceUpdateSerializer, responses={200: OpenApiResponse(description="{face, counts, class_counts}")})
    def patch(self, request, pk):
        face = selectors.face_get_for(request.user, pk)
        serializer = self.LabelingFaceUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            face = services.labeling_face_update(
                face=face, label=serializer.validated_data.get("label"), status=serializer.validated_data.get("status")
            )
        except LabelingError as error:
            return refused(error)
        return Response({
            "face": face_data(face),
            "counts": selectors.status_counts(face.labeling_set),
            "class_counts": selectors.confirmed_class_counts(face.labeling_set),
        })


class FacePngApi(APIView):
    """The 48x48 crop, as stored."""

    renderer_classes = [PngRenderer, JSONRenderer]

    @extend_schema(responses={(200, "image/png"): OpenApiResponse(description="48x48 grayscale PNG")})
    def get(self, request, pk):
        face = selectors.face_get_for(request.user, pk)
        response = HttpResponse(bytes(face.crop_png), content_type="image/png")
        response["Cache-Control"] = "private, max-age=3600"
        return response


class SetAcceptApi(APIView):
    parser_classes = [JSONParser, FormParser]

    class LabelingAcceptSerializer(serializers.Serializer):
        min_probability = serializers.FloatField(help_text="Confirm pending proposals at least this probable (0-1).")

    @extend_schema(request=LabelingAcceptSerializer, responses={200: OpenApiResponse(description="{accepted, counts, class_counts}")})
    def post(self, request, pk):
        labeling_set = selectors.set_get_for(request.user, pk)
        serializer = self.LabelingAcceptSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            accepted = services.labeling_accept_proposals(
                labeling_set=labeling_set, min_probability=serializer.validated_data["min_probability"]
            )
        except LabelingError as error:
            return refused(error)
        return Response({
            "accepted": accepted,
            "counts": selectors.status_counts(labeling_set),
            "class_counts": selectors.confirmed_class_counts(labeling_set),
        })


class SetCreateDatasetApi(APIView):
    parser_classes = [JSONParser, FormParser]

    class LabelingCreateDatasetSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        test_share = serializers.FloatField(required=False, default=0.0,
                                            help_text="Share of each class put in a test split (0: all train).")
        seed = serializers.IntegerField(required=False, default=0, help_text="Seed of the stratified test split.")

    @extend_schema(request=LabelingCreateDatasetSerializer,
                   responses={201: OpenApiResponse(description="The new ready dataset: {id, name, status, ..., url}"),
                              400: OpenApiResponse(description="{detail, code}: nothing confirmed, bad test share.")})
    def post(self, request, pk):
        labeling_set = selectors.set_get_for(request.user, pk)
        serializer = self.LabelingCreateDatasetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            dataset = services.labeling_create_dataset(
                labeling_set=labeling_set, owner=request.user, **serializer.validated_data
            )
        except LabelingError as error:
            return refused(error)
        return Response({
            "id": dataset.pk, "name": dataset.name, "status": dataset.status, "num_items": dataset.num_items,
            "class_counts": dataset.class_counts, "split_counts": dataset.split_counts,
            "url": f"/datasets/{dataset.pk}/",
        }, status=status.HTTP_201_CREATED)
