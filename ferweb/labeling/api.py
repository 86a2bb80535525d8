"""REST API for labeling under /api/labeling/. Thin: validate, call one service or selector, serialize."""
from django.core.exceptions import RequestDataTooBig, TooManyFilesSent
from django.http import HttpResponse
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
)
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from fercore.classes import CLASSES
from ferweb.api_errors import ApiError, error_body
from ferweb.datasets.api import PngRenderer
from ferweb.deletion import DeletePreviewOutput
from ferweb.datasets.models import Dataset

from . import selectors, services
from .models import LabelingFace, LabelingSet
from .services import LabelingError

DEFAULT_PAGE = 200
MAX_PAGE = 1000


class LabelingStatusCountsOutput(serializers.Serializer):
    pending = serializers.IntegerField()
    confirmed = serializers.IntegerField()
    skipped = serializers.IntegerField()
    rejected = serializers.IntegerField(help_text="Crops that are not a usable face; left out of datasets.")
    all = serializers.IntegerField()


CLASS_COUNTS_HELP = "{class: confirmed faces}, every class present."


class LabelingSetOutput(serializers.Serializer):
    """A labeling set in the list: its processing job and how many faces wait for review."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    status = serializers.CharField(help_text="processing, ready or failed")
    progress = serializers.FloatField(help_text="0-100")
    error = serializers.CharField(help_text="Machine-readable error code; empty unless processing failed.")
    human_readable_error = serializers.CharField()
    photos_total = serializers.IntegerField()
    photos_done = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    counts = serializers.SerializerMethodField(help_text="Faces by review status.")

    @extend_schema_field(LabelingStatusCountsOutput)
    def get_counts(self, labeling_set: LabelingSet) -> dict:
        return selectors.status_counts(labeling_set)


class LabelingSetDatasetOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    num_items = serializers.IntegerField()
    url = serializers.SerializerMethodField()

    def get_url(self, dataset: Dataset) -> str:
        return f"/datasets/{dataset.pk}/"


class LabelingSetDetailOutput(LabelingSetOutput):
    """A labeling set with its report, confirmed faces per class and the datasets made from it."""

    report = serializers.DictField(help_text="{unreadable: {count, members}, no_face: {count, members}, model: "
                                             "{version, error}}.")
    class_counts = serializers.SerializerMethodField(help_text=CLASS_COUNTS_HELP)
    datasets = serializers.SerializerMethodField(help_text="Datasets created from this set, newest first (archived "
                                                           "ones left out).")

    def get_class_counts(self, labeling_set: LabelingSet) -> dict[str, int]:
        return selectors.confirmed_class_counts(labeling_set)

    @extend_schema_field(LabelingSetDatasetOutput(many=True))
    def get_datasets(self, labeling_set: LabelingSet) -> list:
        made = labeling_set.datasets.filter(archived_at__isnull=True).order_by("-created_at")
        return LabelingSetDatasetOutput(made, many=True).data


class LabelingFaceOutput(serializers.Serializer):
    id = serializers.IntegerField()
    set = serializers.IntegerField(source="labeling_set_id")
    source_name = serializers.CharField(help_text="Photo name, with #k for its k-th face.")
    box = serializers.ListField(child=serializers.IntegerField(), help_text="[x, y, w, h] in the upright photo, pixels.")
    status = serializers.CharField(help_text="pending, confirmed, skipped or rejected")
    proposed_label = serializers.CharField(source="proposed_class", allow_null=True)
    proposed_probability = serializers.FloatField(allow_null=True, help_text="The largest probability: the "
                                                                             "model's confidence.")
    probabilities = serializers.DictField(child=serializers.FloatField(), help_text="{class: p} from the model.")
    entropy = serializers.FloatField(allow_null=True, help_text="Entropy of the probabilities in nats (0: certain, "
                                                                "1.95: all seven classes alike).")
    decided_at = serializers.DateTimeField(allow_null=True, help_text="When the face was last decided; null "
                                                                      "while pending.")
    model_version = serializers.CharField(help_text="The model that made the proposal.")
    confirmed_label = serializers.CharField(source="confirmed_class", allow_null=True)
    crop_url = serializers.SerializerMethodField()

    def get_crop_url(self, face: LabelingFace) -> str:
        return f"/api/labeling/faces/{face.pk}.png"


class LabelingReviewCountsOutput(serializers.Serializer):
    """The set's counts after a review."""

    counts = LabelingStatusCountsOutput(help_text="Faces by review status.")
    class_counts = serializers.DictField(child=serializers.IntegerField(), help_text=CLASS_COUNTS_HELP)


def refused(error: LabelingError, http_status=status.HTTP_400_BAD_REQUEST) -> Response:
    fields = {error.field: [error.message]} if error.field else None
    return Response(error_body(error.code, error.message, fields), status=http_status)


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
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField(help_text="processing: faces are found and classified in the background.")
        photos_total = serializers.IntegerField()

        class Meta:
            ref_name = "LabelingSetCreated"

    @extend_schema(operation_id="labeling_sets_list", responses=LabelingSetOutput(many=True), description="Your sets, newest first.")
    def get(self, request):
        return Response(LabelingSetOutput(selectors.sets_for(request.user), many=True).data)

    @extend_schema(
        request={"multipart/form-data": LabelingUploadSerializer},
        responses={201: OutputSerializer,
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
        return Response(self.OutputSerializer(labeling_set).data, status=status.HTTP_201_CREATED)


class SetDetailApi(APIView):
    @extend_schema(responses=LabelingSetDetailOutput, description="The set with progress, counts and its report.")
    def get(self, request, pk):
        return Response(LabelingSetDetailOutput(selectors.set_get_for(request.user, pk)).data)

    @extend_schema(
        responses={204: OpenApiResponse(description="Deleted.")},
        description="Deletes the set with its photos and faces; processing still running is stopped first. "
                    "Datasets made from it stay.",
    )
    def delete(self, request, pk):
        services.labeling_set_delete(labeling_set=selectors.set_get_for(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class SetDeletePreviewApi(APIView):
    @extend_schema(responses=DeletePreviewOutput,
                   description="What DELETE on the set would do: the sentence to confirm and the bytes it frees.")
    def get(self, request, pk):
        preview = services.labeling_set_delete_preview(labeling_set=selectors.set_get_for(request.user, pk))
        return Response(DeletePreviewOutput(preview).data)


class SetPhotosApi(UploadParsing, APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        added = serializers.IntegerField(help_text="Photos added; processing is queued.")

        class Meta:
            ref_name = "LabelingPhotosAdded"

    @extend_schema(
        request={"multipart/form-data": LabelingUploadSerializer},
        responses={202: OutputSerializer,
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
        return Response(self.OutputSerializer({"id": labeling_set.pk, "status": labeling_set.status, "added": added}).data,
                        status=status.HTTP_202_ACCEPTED)


def face_query(params) -> dict:
    """status, order and predicted from a query string, checked: {status, order, predicted} for faces_of."""
    wanted = params.get("status") or None
    choices = [s.value for s in LabelingFace.Status]
    if wanted is not None and wanted not in choices:
        raise ApiError("bad_status", f"Unknown status {wanted!r}: use one of {', '.join(choices)}.")
    order = params.get("order") or "upload"
    if order not in selectors.FACE_ORDERS:
        raise ApiError("bad_order", f"Unknown order {order!r}: use one of {', '.join(selectors.FACE_ORDERS)}.")
    predicted = params.get("predicted") or None
    if predicted is not None and predicted not in CLASSES:
        raise ApiError("bad_label", f"Unknown class {predicted!r}: use one of {', '.join(CLASSES)}.")
    return {"status": wanted, "order": order, "predicted": predicted}


class SetFacesApi(APIView):
    class OutputSerializer(serializers.Serializer):
        count = serializers.IntegerField(help_text="Faces that match in all.")
        results = LabelingFaceOutput(many=True, help_text="This page of them, in the order asked for.")

        class Meta:
            ref_name = "LabelingFacePage"

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=[s.value for s in LabelingFace.Status], required=False),
            OpenApiParameter(
                "order", str, enum=list(selectors.FACE_ORDERS), required=False,
                description="upload (default); least_confident: lowest top probability first; entropy: highest "
                            "entropy first; most_confident: highest top probability first. Faces without a "
                            "proposal come last.",
            ),
            OpenApiParameter("predicted", str, enum=list(CLASSES), required=False,
                             description="Only faces whose proposed class is this one."),
            OpenApiParameter("offset", int, required=False), OpenApiParameter("limit", int, required=False),
        ],
        responses=OutputSerializer,
    )
    def get(self, request, pk):
        labeling_set = selectors.set_get_for(request.user, pk)
        query = face_query(request.query_params)
        try:
            offset = max(0, int(request.query_params.get("offset", 0)))
            limit = min(MAX_PAGE, max(1, int(request.query_params.get("limit", DEFAULT_PAGE))))
        except ValueError:
            return Response({"detail": "offset and limit are whole numbers.", "code": "bad_paging"}, status=400)
        faces = selectors.faces_of(labeling_set, query["status"], order=query["order"], predicted=query["predicted"])
        return Response(self.OutputSerializer({"count": faces.count(), "results": faces[offset:offset + limit]}).data)


class SetUndoApi(APIView):
    class OutputSerializer(LabelingReviewCountsOutput):
        face = LabelingFaceOutput(help_text="The face put back to pending.")
        undone = serializers.CharField(help_text="The decision taken back: confirmed, skipped or rejected.")

        class Meta:
            ref_name = "LabelingUndone"

    @extend_schema(
        request=None, responses=OutputSerializer,
        description="Takes back the set's latest decision (confirm, correction, skip or reject): that face is "
                    "pending again. Calling it again takes back the decision before. 400 `nothing_to_undo` "
                    "when no face is decided.",
    )
    def post(self, request, pk):
        labeling_set = selectors.set_get_for(request.user, pk)
        try:
            face, undone = services.labeling_undo_last(labeling_set=labeling_set)
        except LabelingError as error:
            return refused(error)
        return Response(self.OutputSerializer(
            {"face": face, "undone": undone, **selectors.review_counts(labeling_set)}
        ).data)


class FaceApi(APIView):
    parser_classes = [JSONParser, FormParser, MultiPartParser]

    class LabelingFaceUpdateSerializer(serializers.Serializer):
        label = serializers.CharField(required=False, help_text=f"Confirms the face with this class: {', '.join(CLASSES)}.")
        status = serializers.CharField(required=False, help_text="confirmed (accepts the proposal), skipped, "
                                                                 "rejected (not a usable face) or pending.")

    class OutputSerializer(LabelingReviewCountsOutput):
        face = LabelingFaceOutput()

        class Meta:
            ref_name = "LabelingFaceUpdated"

    @extend_schema(responses=LabelingFaceOutput)
    def get(self, request, pk):
        return Response(LabelingFaceOutput(selectors.face_get_for(request.user, pk)).data)

    @extend_schema(request=LabelingFaceUpdateSerializer, responses=OutputSerializer)
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
        return Response(self.OutputSerializer({"face": face, **selectors.review_counts(face.labeling_set)}).data)


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

    class OutputSerializer(LabelingReviewCountsOutput):
        accepted = serializers.IntegerField(help_text="Proposals confirmed by this call.")

        class Meta:
            ref_name = "LabelingAccepted"

    @extend_schema(request=LabelingAcceptSerializer, responses=OutputSerializer)
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
        return Response(self.OutputSerializer({"accepted": accepted, **selectors.review_counts(labeling_set)}).data)


class SetCreateDatasetApi(APIView):
    parser_classes = [JSONParser, FormParser]

    class LabelingCreateDatasetSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        test_share = serializers.FloatField(required=False, default=0.0,
                                            help_text="Share of each class put in a test split (0: all train).")
        seed = serializers.IntegerField(required=False, default=0, help_text="Seed of the stratified test split.")
        dataset = serializers.IntegerField(
            required=False, help_text="Add the faces to this ready dataset of yours, as a new version of it, instead "
                                      "of creating a dataset.")

    class OutputSerializer(LabelingSetDatasetOutput):
        """The new ready dataset (or the one the faces were added to)."""

        added = serializers.IntegerField(help_text="Faces this call put in the dataset.")

        class_counts = serializers.DictField(child=serializers.IntegerField(), help_text="{class: n}.")
        split_counts = serializers.DictField(child=serializers.IntegerField(), help_text="{split: n}.")

        class Meta:
            ref_name = "LabelingDatasetCreated"

    @extend_schema(request=LabelingCreateDatasetSerializer,
                   responses={201: OutputSerializer, 200: OutputSerializer,
                              400: OpenApiResponse(description="{detail, code}: nothing confirmed, bad test share; "
                                                               "`name_taken` (with `fields.name`): you already "
                                                               "have a dataset of that name.")})
    def post(self, request, pk):
        labeling_set = selectors.set_get_for(request.user, pk)
        serializer = self.LabelingCreateDatasetSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        options = dict(serializer.validated_data)
        if "dataset" in options:
            options["into"] = _own_ready_dataset(request.user, options.pop("dataset"))
        try:
            dataset = services.labeling_create_dataset(labeling_set=labeling_set, owner=request.user, **options)
        except LabelingError as error:
            return refused(error)
        added = "into" in options
        return Response(self.OutputSerializer(dataset).data, status=status.HTTP_200_OK if added else status.HTTP_201_CREATED)


def _own_ready_dataset(user, pk: int):
    """The user's ready dataset `pk`, or a 400 on the `dataset` field."""
    from ferweb.datasets.models import Dataset

    dataset = Dataset.objects.filter(pk=pk, owner=user, archived_at__isnull=True).first()
    if dataset is None:
        raise serializers.ValidationError({"dataset": [f"You have no dataset {pk}."]})
    if dataset.status != Dataset.Status.READY:
        raise serializers.ValidationError({"dataset": [f"Dataset {pk} is {dataset.status}, not ready."]})
    return dataset
