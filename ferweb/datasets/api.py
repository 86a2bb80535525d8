"""REST API for datasets. Thin: validate, call one service or selector, serialize."""
import tempfile

import cv2
from django.http import FileResponse, Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from ferweb import training_queue
from ferweb.api_errors import ApiError, error_body
from ferweb.deletion import DeletePreviewOutput
from fercore.classes import CLASSES

from . import selectors, services
from .models import Dataset, DatasetVersion
from fercore.readers import DatasetError


class DatasetOutput(serializers.Serializer):
    """A dataset in the list: its import job and its counts."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    status = serializers.CharField(help_text="importing, ready or failed")
    progress = serializers.FloatField(help_text="0-100")
    phase = serializers.CharField(
        help_text="While importing: queued (waiting for a worker), checking_archive (its safety, layout and class "
                  "folders) or importing (reading the faces; `progress` counts them); empty once it ended.")
    error = serializers.CharField(help_text="Machine-readable error code; empty unless the import failed.")
    human_readable_error = serializers.CharField()
    num_items = serializers.IntegerField()
    class_counts = serializers.DictField(child=serializers.IntegerField(), help_text="{class: n} over all splits.")
    split_counts = serializers.DictField(child=serializers.IntegerField(), help_text="{split: n}.")
    source_name = serializers.CharField(help_text="The uploaded file's name.")
    source_format = serializers.CharField(help_text="zip, csv or images.")
    trained_on = serializers.BooleanField(
        source="is_locked", help_text="A run trained on it: its edits make new versions, the runs keep theirs.")
    archived_at = serializers.DateTimeField(
        allow_null=True, help_text="Set when its owner deleted it while runs still named it: hidden from lists, "
                                   "kept for those runs.")
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)


class DatasetUrlsOutput(serializers.Serializer):
    item_png = serializers.CharField(help_text="One face as a PNG; {index} is its row.")
    mean_png = serializers.CharField(help_text="The mean face of a class as a PNG; {class} is its name.")


class DatasetDetailOutput(DatasetOutput):
    """A dataset with its import report; a ready one also with sample faces and the URLs of its images."""

    report = serializers.DictField(help_text="Skipped members, faces not found, quality findings.")
    attempts = serializers.IntegerField()
    samples = serializers.DictField(child=serializers.ListField(child=serializers.IntegerField()), required=False,
                                    help_text="Ready datasets only: {class: [item index]}, a few faces of each class.")
    urls = DatasetUrlsOutput(required=False, help_text="Ready datasets only.")

    def to_representation(self, dataset: Dataset) -> dict:
        # samples and urls are no attributes of a dataset, so the fields leave them out; a ready one gets them here.
        data = super().to_representation(dataset)
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

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField(help_text="importing: the import runs in the background.")

        class Meta:
            ref_name = "DatasetCreated"

    @extend_schema(operation_id="datasets_list", responses=DatasetOutput(many=True),
                   description="The datasets you may see, newest first.")
    def get(self, request):
        return Response(DatasetOutput(selectors.datasets_for(request.user), many=True).data)

    @extend_schema(
        request={"multipart/form-data": DatasetUploadSerializer},
        responses={201: OutputSerializer,
                   400: OpenApiResponse(description="{detail, code}: the file is refused; nothing is kept. "
                                                    "`name_taken` (with `fields.name`): you already have a dataset "
                                                    "of that name; without a name, the file's name is used, made "
                                                    "unique (\"faces (2)\")."),
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
        except services.DatasetNameTaken as error:
            return Response(error_body(error.code, error.message, {"name": [error.message]}),
                            status=status.HTTP_400_BAD_REQUEST)
        except DatasetError as error:
            return Response({"detail": error.message, "code": error.code}, status=status.HTTP_400_BAD_REQUEST)
        return Response(self.OutputSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetDetailApi(APIView):
    @extend_schema(responses=DatasetDetailOutput, description="The dataset with counts and its import report; "
                                                               "archived datasets too (runs link to them).")
    def get(self, request, pk):
        return Response(DatasetDetailOutput(selectors.dataset_get_for(request.user, pk)).data)

    @extend_schema(
        responses={204: OpenApiResponse(description="Deleted, or archived (see delete-preview/).")},
        description="Deletes the dataset with its faces and files (an import still running is stopped). A dataset "
                    "that runs were trained on is archived instead: hidden from every list, kept for those runs, "
                    "and deleted with the last of them. GET delete-preview/ first says which, and what it frees.",
    )
    def delete(self, request, pk):
        services.dataset_delete(dataset=selectors.dataset_get_for(request.user, pk))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DatasetDeletePreviewApi(APIView):
    @extend_schema(responses=DeletePreviewOutput,
                   description="What DELETE on the dataset would do: the sentence to confirm, the bytes it frees, "
                               "and whether it archives the dataset (runs were trained on it) instead.")
    def get(self, request, pk):
        preview = services.dataset_delete_preview(dataset=selectors.dataset_get_for(request.user, pk))
        return Response(DeletePreviewOutput(preview).data)


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


class DatasetExportApi(APIView):
    """The dataset's faces as a file FERWeb (or anyone) can import again."""

    renderer_classes = [JSONRenderer]

    @extend_schema(
        parameters=[OpenApiParameter("version", int, description="Which version (default: the newest, which the "
                                                                   "export seals: it never changes after).")],
        responses={(200, "application/zip"): OpenApiResponse(OpenApiTypes.BINARY,
                                                              description="export.zip: split/<class>/<name>.png"),
                   (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR,
                                                      description="export.csv: FER2013's emotion,pixels,Usage"),
                   409: OpenApiResponse(description="`not_ready`: the dataset is still importing or failed.")},
    )
    def get(self, request, pk, export_format):
        dataset = selectors.dataset_get_for(request.user, pk)
        if dataset.status != Dataset.Status.READY:
            raise ApiError("not_ready", f"Dataset {pk} is {dataset.status}; only ready datasets can be exported.",
                           status=status.HTTP_409_CONFLICT)
        number = version_number(request, "version", required=False)
        out = tempfile.TemporaryFile()  # a FER2013-size export is tens of MB: not kept in memory
        try:
            filename = selectors.dataset_export(dataset, export_format, out, number)
        except DatasetVersion.DoesNotExist:
            raise Http404(f"Dataset {pk} has no version {number}.") from None
        out.seek(0)
        return FileResponse(out, as_attachment=True, filename=filename,
                            content_type=selectors.EXPORT_FORMATS[export_format][0])


# ---------------------------------------------------------------- versions

def version_number(request, name: str, *, required: bool = True) -> int | None:
    """A version number from the query string; 400 `invalid` on the parameter when it is not one."""
    raw = request.query_params.get(name, "")
    if not raw and not required:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise serializers.ValidationError({name: [f"{name} is a version number (1, 2, ...)."]})
    return int(raw)


class VersionRunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField()
    accuracy = serializers.FloatField(allow_null=True, help_text="Held-out accuracy (0-1) once it succeeded.")


class DatasetVersionOutput(serializers.Serializer):
    number = serializers.IntegerField(help_text="1 for the import, then along the chain.")
    parent = serializers.IntegerField(source="parent.number", allow_null=True, default=None,
                                      help_text="The number of the version it changed; null for the import.")
    content_hash = serializers.CharField(help_text="SHA-256 of its faces, labels, splits and exclusions.")
    source = serializers.CharField(help_text="import, edit, review, confusion, admin or labeling.")
    summary = serializers.CharField(help_text='The change in one line, e.g. "12 relabeled fear -> sad, 3 excluded".')
    changes = serializers.JSONField(help_text="{relabeled: {'a -> b': n}, excluded, included, added, removed, moved}.")
    num_items = serializers.IntegerField(help_text="Faces it holds, excluded ones left out.")
    class_counts = serializers.DictField(child=serializers.IntegerField())
    split_counts = serializers.DictField(child=serializers.IntegerField())
    created_by = serializers.CharField(source="created_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()
    sealed = serializers.BooleanField(help_text="Never changes again: a run trained on it, or it was exported. The "
                                                "newest version takes one sitting's edits until then.")
    runs = serializers.SerializerMethodField(help_text="The runs trained on it, newest first.")

    @extend_schema_field(VersionRunOutput(many=True))
    def get_runs(self, version) -> list[dict]:
        return [{"id": run.pk, "name": run.name, "status": run.status, "accuracy": run.metrics.get("accuracy")}
                for run in version.training_runs.order_by("-created_at", "-id")]


class DatasetVersionsApi(APIView):
    @extend_schema(
        operation_id="datasets_versions",
        responses=DatasetVersionOutput(many=True),
        description="The dataset's chain of versions, newest first, each with the runs trained on it. Every "
                    "relabel, exclusion or addition makes a version; a version a run trained on never changes.",
    )
    def get(self, request, pk):
        from .versions import version_chain

        dataset = selectors.dataset_get_for(request.user, pk)
        return Response(DatasetVersionOutput(version_chain(dataset), many=True).data)


class VersionDiffFaceOutput(serializers.Serializer):
    item = serializers.IntegerField()
    index = serializers.IntegerField(help_text="Its row: the face is items/{index}.png.")
    source_name = serializers.CharField()
    change = serializers.CharField(help_text="relabeled, excluded, included, added, removed or moved.")
    before = serializers.CharField(help_text="The class (a split, for moved) in `from`; empty when added.")
    after = serializers.CharField(help_text="The class (a split, for moved) in `to`; empty when removed.")


class VersionDiffOutput(serializers.Serializer):
    # `from` is a keyword: the field is declared under another name and renamed below.
    from_ = serializers.IntegerField(help_text="The older version's number.")
    to = serializers.IntegerField()
    summary = serializers.CharField()
    changes = serializers.JSONField()
    count = serializers.IntegerField(help_text="Changed faces in all; `faces` lists at most ?limit= of them.")
    faces = VersionDiffFaceOutput(many=True)


VersionDiffOutput._declared_fields["from"] = VersionDiffOutput._declared_fields.pop("from_")


class DatasetVersionDiffApi(APIView):
    MAX_LIMIT = 1000

    @extend_schema(
        operation_id="datasets_versions_diff",
        parameters=[OpenApiParameter("from", int, required=True, description="A version number."),
                    OpenApiParameter("to", int, required=True, description="Another version number of the dataset."),
                    OpenApiParameter("limit", int, description=f"Faces to list (default 200, at most {MAX_LIMIT}).")],
        responses=VersionDiffOutput,
        description="What changed between two versions of the dataset: counts, a one-line summary and the faces.",
    )
    def get(self, request, pk):
        from .versions import version_diff, version_get

        dataset = selectors.dataset_get_for(request.user, pk)
        old, new = version_number(request, "from"), version_number(request, "to")
        limit = request.query_params.get("limit", "200")
        if not limit.isdigit():
            raise serializers.ValidationError({"limit": ["limit is a whole number."]})
        versions = []
        for number in (old, new):
            try:
                versions.append(version_get(dataset, number))
            except DatasetVersion.DoesNotExist:
                raise Http404(f"Dataset {pk} has no version {number}.") from None
        return Response(VersionDiffOutput(version_diff(*versions, limit=min(int(limit), self.MAX_LIMIT))).data)


# ---------------------------------------------------------------- the label-error finder

class LabelIssueModelOutput(serializers.Serializer):
    choice = serializers.CharField(
        help_text='What was asked for: "default", "active", a version id, or "cross-validation".')
    version_id = serializers.IntegerField(
        allow_null=True, help_text="The model version used; null for the shipped model and cross-validation.")
    version = serializers.CharField(
        help_text='The model\'s version label; with cross-validation what trains, e.g. "5-fold cross-validation '
                  '(quick preset)".')


class LabelIssueCountsOutput(serializers.Serializer):
    scored = serializers.IntegerField(help_text="Faces the model scored (excluded faces are left out).")
    flagged = serializers.IntegerField(help_text="Faces whose label is probably wrong.")
    flagged_by_class = serializers.DictField(child=serializers.IntegerField(), help_text="{given class: flagged}.")


class LabelIssueOutput(serializers.Serializer):
    item = serializers.IntegerField(help_text="The face's item id (POST decisions to items/{item}/).")
    index = serializers.IntegerField(help_text="The face's row: its PNG is items/{index}.png.")
    source_name = serializers.CharField(help_text="The face's file name (or CSV row) in the upload.")
    given = serializers.CharField(help_text="The label the face had when it was scored.")
    suggested = serializers.CharField(help_text="The most probable other class.")
    score = serializers.FloatField(help_text="0-1: how likely the given label is wrong.")
    label = serializers.CharField(help_text="The face's label now (after any decisions).")
    excluded = serializers.BooleanField(help_text="Whether the face is excluded now.")


class LabelIssueScanOutput(serializers.Serializer):
    """The dataset's label-error scan: its job state and, once it succeeded, the flagged faces."""

    id = serializers.IntegerField(allow_null=True, help_text="The scan; null when the dataset was never scanned.")
    status = serializers.CharField(help_text="none (never scanned), queued, running, succeeded, failed or cancelled.")
    phase = serializers.CharField(
        help_text="While running: queued, classifying or ranking; with cross-validation fold_<i>_of_<k> (training "
                  "fold i of k and scoring its faces) before ranking; empty once it ended.")
    progress = serializers.FloatField(help_text="0-100")
    processed = serializers.IntegerField(help_text="Faces classified so far.")
    total = serializers.IntegerField(help_text="Faces to classify.")
    folds = serializers.IntegerField(allow_null=True, help_text="Cross-validation: the folds; null when a model scores.")
    estimated_seconds = serializers.FloatField(
        allow_null=True, help_text="Cross-validation: how long it was estimated to take on the training worker.")
    dataset_version = serializers.IntegerField(
        allow_null=True, help_text="The number of the dataset version whose labels were scored, once known.")
    error = serializers.CharField(help_text="Machine-readable error code; empty unless the scan failed.")
    human_readable_error = serializers.CharField()
    model = LabelIssueModelOutput(allow_null=True, help_text="The model that scores the faces; null before any scan.")
    in_sample = serializers.BooleanField(help_text="The model was trained on this dataset: its scores are in-sample.")
    warning = serializers.CharField(help_text="What to keep in mind about these scores, for a person; may be empty.")
    counts = LabelIssueCountsOutput(allow_null=True, help_text="Once the scan succeeded.")
    issues = LabelIssueOutput(many=True, help_text="The flagged faces, most likely wrong first (see ?limit=).")
    created_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    waiting_behind = training_queue.BusyWithOutput(
        many=True, help_text="While a cross-validation scan is queued: what the training workers are busy with now.")


class CrossValidationInput(serializers.Serializer):
    folds = serializers.IntegerField(required=False, min_value=2, max_value=10,
                                     help_text="With cross-validation: the number of folds (default 5).")
    preset = serializers.CharField(required=False, help_text="With cross-validation: the recipe each fold trains, "
                                                             "a preset of GET /api/runs/presets/ (default quick).")
    epochs = serializers.IntegerField(required=False, min_value=1,
                                      help_text="With cross-validation: epochs per fold instead of the preset's.")


def cross_validation_args(data: dict) -> dict:
    """The folds, preset and epochs a client gave (the service defaults the rest)."""
    return {name: data[name] for name in ("folds", "preset", "epochs") if name in data}


def recipe_refusal(error) -> Exception:
    """A refused cross-validation recipe (training_jobs.services.RunError) as the API answers a refused
    run: `invalid` with its fields, or its own code (too_much_memory)."""
    if error.code == "invalid":
        return serializers.ValidationError({k: [v] for k, v in error.errors.items()})
    return ApiError(error.code, error.detail)


def label_issue_state(dataset: Dataset, scan, user, limit: int | None = None) -> dict:
    from . import label_issues

    state = {
        "id": None, "status": "none", "phase": "", "progress": 0.0, "processed": 0, "total": 0, "error": "",
        "human_readable_error": "", "model": None, "in_sample": False, "warning": "",
        "counts": None, "issues": [], "created_at": None, "finished_at": None,
        "folds": None, "estimated_seconds": None, "dataset_version": None, "waiting_behind": [],
    }
    if scan is None:
        return state
    state.update(
        id=scan.pk, status=scan.status, phase=scan.phase, progress=scan.progress, processed=scan.processed,
        total=scan.total, error=scan.error, human_readable_error=scan.human_readable_error,
        model={"choice": scan.model_choice, "version_id": scan.model_version_id, "version": scan.model_label},
        in_sample=scan.in_sample, warning=label_issues.IN_SAMPLE_WARNING if scan.in_sample else "",
        created_at=scan.created_at, finished_at=scan.finished_at, folds=scan.folds,
        estimated_seconds=scan.estimated_seconds,
        dataset_version=scan.dataset_version.number if scan.dataset_version_id else None,
    )
    if scan.status == scan.Status.SUCCEEDED:
        state.update(counts=scan.counts, issues=label_issues.scan_issues(scan, limit))
    elif scan.status == scan.Status.QUEUED and scan.folds:
        state["waiting_behind"] = training_queue.busy_with(user)
    return state


class LabelIssuesApi(APIView):
    MAX_LIMIT = 5000

    class StartInput(CrossValidationInput):
        model = serializers.CharField(
            help_text='"default" (the shipped model), "active" (yours), a model version id, or "cross-validation" '
                      "(k models of a recipe, each trained on the other folds, score the faces they never saw; "
                      "runs on the training worker).")

    @extend_schema(
        operation_id="datasets_label_issues_state",
        parameters=[OpenApiParameter("limit", int, required=False,
                                     description=f"Issues to list, most likely wrong first (default and most "
                                                 f"{MAX_LIMIT}); `counts.flagged` says how many there are.")],
        responses=LabelIssueScanOutput,
        description="The dataset's label-error scan: its state and, once it succeeded, the faces whose label is "
                    "probably wrong, with the suggested label and a score.",
    )
    def get(self, request, pk):
        dataset = selectors.dataset_get_for(request.user, pk)
        try:
            limit = min(self.MAX_LIMIT, max(0, int(request.query_params.get("limit", self.MAX_LIMIT))))
        except ValueError:
            raise serializers.ValidationError({"limit": ["limit must be a whole number, e.g. 100"]}) from None
        from . import label_issues

        state = label_issue_state(dataset, label_issues.scan_of(dataset), request.user, limit)
        return Response(LabelIssueScanOutput(state).data)

    @extend_schema(
        operation_id="datasets_label_issues_start",
        request=StartInput,
        responses={202: LabelIssueScanOutput,
                   400: OpenApiResponse(description="`invalid`: an unknown model, or folds, preset or epochs out of "
                                                    "range (`fields` names it); `too_much_memory`: the recipe's "
                                                    "batch does not fit the training worker."),
                   409: OpenApiResponse(description="`scan_running`: a scan of this dataset runs already; "
                                                    "`not_ready`: the dataset is not imported.")},
        description="Starts a scan of the dataset with a model (a finished scan is replaced). The page says when "
                    "the model was trained on these faces: its scores are then in-sample and weaker. With "
                    '"cross-validation" every face is scored out of sample instead: `folds` models of `preset` '
                    "train on the training worker, each on the other folds.",
    )
    def post(self, request, pk):
        from training_jobs.services import RunError

        from . import label_issues

        dataset = selectors.dataset_get_for(request.user, pk)
        serializer = self.StartInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        model = serializer.validated_data["model"]
        try:
            if model == label_issues.CROSS_VALIDATION:
                from training_jobs import cross_validation

                scan = cross_validation.cv_scan_start(owner=request.user, dataset=dataset,
                                                      **cross_validation_args(serializer.validated_data))
            else:
                scan = label_issues.scan_start(owner=request.user, dataset=dataset, model=model)
        except label_issues.ScanRefused as refused:
            raise ApiError(refused.code, refused.message, status=refused.status) from None
        except RunError as error:
            raise recipe_refusal(error) from None
        dataset.refresh_from_db()
        state = label_issue_state(dataset, scan, request.user)
        return Response(LabelIssueScanOutput(state).data, status=status.HTTP_202_ACCEPTED)


class CrossValidationEstimateOutput(serializers.Serializer):
    folds = serializers.IntegerField()
    label = serializers.CharField(help_text='What trains, e.g. "5-fold cross-validation (quick preset)".')
    estimated_seconds = serializers.FloatField(help_text="All the folds' training and scoring, on the training worker.")
    basis = serializers.CharField(help_text="Where the speed comes from (measured on the worker, or a guess).")
    measured = serializers.BooleanField(help_text="The recipe's network and batch were measured on the worker.")


class LabelIssuesEstimateApi(APIView):
    @extend_schema(
        operation_id="datasets_label_issues_estimate",
        request=CrossValidationInput,
        responses={200: CrossValidationEstimateOutput,
                   400: OpenApiResponse(description="`invalid`: folds, preset or epochs out of range (`fields` "
                                                    "names it); `too_much_memory`: the batch does not fit the "
                                                    "training worker.")},
        description="How long a cross-validation scan of the dataset with these folds and preset would take; "
                    "nothing starts.",
    )
    def post(self, request, pk):
        from training_jobs import cross_validation
        from training_jobs.services import RunError

        dataset = selectors.dataset_get_for(request.user, pk)
        serializer = CrossValidationInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            plan, estimate = cross_validation.cv_plan(dataset=dataset, measure=True,
                                                      **cross_validation_args(serializer.validated_data))
        except RunError as error:
            raise recipe_refusal(error) from None
        return Response(CrossValidationEstimateOutput({
            "folds": plan.folds, "label": plan.label, "estimated_seconds": round(plan.estimated_seconds, 1),
            "basis": estimate.basis, "measured": estimate.measured,
        }).data)


class DatasetItemOutput(serializers.Serializer):
    item = serializers.IntegerField(source="pk")
    index = serializers.IntegerField()
    source_name = serializers.CharField()
    label = serializers.SerializerMethodField(help_text="The face's class.")
    split = serializers.CharField()
    excluded = serializers.BooleanField()

    def get_label(self, item) -> str:
        return CLASSES[item.label]


class DatasetItemDecisionApi(APIView):
    class DecisionInput(serializers.Serializer):
        label = serializers.ChoiceField(choices=list(CLASSES), required=False, help_text="Relabel the face.")
        excluded = serializers.BooleanField(required=False, help_text="Exclude the face (true) or take it back.")
        source = serializers.ChoiceField(
            choices=["edit", "review", "confusion"], default="edit",
            help_text="Where the decision is made (the label-error review, a confusion cell): names the version it makes.",
        )

        def validate(self, data):
            if not set(data) - {"source"}:
                raise serializers.ValidationError("give label, excluded or both")
            return data

    @extend_schema(
        operation_id="datasets_item_decide",
        request=DecisionInput,
        responses=DatasetItemOutput,
        description="Relabel a face and/or exclude it (or take it back); undo is the same call with the previous "
                    "values. Counts and mean faces follow, and the dataset gets a new version (one person's sitting "
                    "of decisions from one place makes one version); the versions runs trained on never change.",
    )
    def post(self, request, pk, item):
        from . import label_issues
        from .models import DatasetItem

        dataset = selectors.dataset_get_for(request.user, pk)
        serializer = self.DecisionInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            updated = label_issues.item_decide(dataset=dataset, item_id=item, user=request.user,
                                               **serializer.validated_data)
        except DatasetItem.DoesNotExist:
            raise Http404(f"Dataset {pk} has no item {item}.") from None
        return Response(DatasetItemOutput(updated).data)
