"""REST API for runs and architectures (model versions: inference/api.py). Thin: validate, call one
service, serialize."""
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_field,
    inline_serializer,
)
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ferweb import training_queue
from ferweb.api_errors import ApiError, error_body
from ferweb.deletion import DeletePreviewOutput
from fercore import catalogue
from fercore.classes import CLASSES
from inference.api import ModelVersionOutput, model_version_data
from training_jobs import selectors, services
from training_jobs.models import TrainingRun

# ---------------------------------------------------------------- documented shapes (OpenAPI)


ARCHITECTURE = inline_serializer("Architecture", {
    "name": serializers.CharField(), "description": serializers.CharField(),
    "source": serializers.CharField(help_text="The paper it follows, or FERWeb for its own designs."),
    "param_count": serializers.IntegerField(help_text="Trainable parameters."),
    "macs": serializers.IntegerField(help_text="Multiply-adds of the conv and dense layers for one 48x48 face."),
}, many=True)
RECIPE_FIELD = inline_serializer("RecipeField", {
    "name": serializers.CharField(), "type": serializers.CharField(), "default": serializers.JSONField(),
    "choices": serializers.ListField(allow_null=True), "min": serializers.FloatField(allow_null=True),
    "max": serializers.FloatField(allow_null=True), "help": serializers.CharField(), "group": serializers.CharField(),
    "label": serializers.CharField(help_text="The field's name for people."),
    "choice_labels": serializers.DictField(child=serializers.CharField(), allow_null=True,
                                           help_text="{choice: its name for people}, where the choices have one."),
    "basic": serializers.BooleanField(help_text="Shown first on the form; the rest are advanced settings."),
}, many=True)
PRESET_LIST = inline_serializer("PresetList", {
    "default": serializers.CharField(help_text="The preset that suits the training worker's device: quick on a "
                                               "CPU, ferweb_default on a GPU."),
    "presets": inline_serializer("Preset", {
        "name": serializers.CharField(), "title": serializers.CharField(),
        "description": serializers.CharField(help_text="One line: what it trains and where its numbers come from."),
        "source": serializers.CharField(help_text="The paper it follows, or FERWeb."),
        "config": serializers.DictField(help_text="Its complete recipe: every TrainConfig field."),
    }, many=True),
})

# ---------------------------------------------------------------- run shapes: these build the answers

SUMMARY_METRICS = ("accuracy", "macro_f1", "macro_auc", "micro_auc")  # the list's metrics: no curves


class RunDatasetOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class RocCurveOutput(serializers.Serializer):
    fpr = serializers.ListField(child=serializers.FloatField())
    tpr = serializers.ListField(child=serializers.FloatField())
    auc = serializers.FloatField(allow_null=True, help_text="Null when the test split lacks the class or has only it.")


class ClassMetricsOutput(serializers.Serializer):
    precision = serializers.FloatField(required=False)
    recall = serializers.FloatField(required=False)
    f1 = serializers.FloatField(required=False)
    specificity = serializers.FloatField(required=False)
    support = serializers.IntegerField(required=False)
    auc = serializers.FloatField(required=False, allow_null=True)


class RunMetricsSummaryOutput(serializers.Serializer):
    """The headline numbers; absent until the run is evaluated, null where undefined (an AUC without both classes)."""

    accuracy = serializers.FloatField(required=False)
    macro_f1 = serializers.FloatField(required=False)
    macro_auc = serializers.FloatField(required=False, allow_null=True)
    micro_auc = serializers.FloatField(required=False, allow_null=True)


class RunMetricsOutput(RunMetricsSummaryOutput):
    """Held-out evaluation of the best checkpoint; empty until the run is evaluated. More keys than these may
    come (ece, nll, occlusion, notes, ...)."""

    per_class = serializers.DictField(child=ClassMetricsOutput(), required=False)
    confusion_matrix = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()),
                                             required=False, help_text="Counts, true class by predicted class.")
    confusion_matrix_normalized = serializers.ListField(child=serializers.ListField(child=serializers.FloatField()),
                                                        required=False, help_text="Rows sum to 1.")
    roc = serializers.DictField(child=RocCurveOutput(), required=False, help_text="One-vs-rest curve of each class.")
    notes = serializers.ListField(child=serializers.CharField(), required=False,
                                  help_text="What was changed to fit the training worker.")


class RunConfigSummaryOutput(serializers.Serializer):
    epochs = serializers.IntegerField(allow_null=True)
    batch_size = serializers.IntegerField(allow_null=True)
    learning_rate = serializers.FloatField(allow_null=True)


class BaselineOutput(serializers.Serializer):
    majority_class = serializers.CharField(help_text="The commonest class of the evaluation split.")
    majority_accuracy = serializers.FloatField(help_text="Accuracy of always answering it (0-1).")


class ActiveModelOutput(serializers.Serializer):
    id = serializers.IntegerField(allow_null=True, help_text="Its model version; null for the shipped model.")
    version = serializers.CharField()
    accuracy = serializers.FloatField(allow_null=True, help_text="Its held-out accuracy (0-1); null when unknown.")


class RunProgressOutput(serializers.Serializer):
    percent = serializers.FloatField(help_text="0-100; 100 only once the run has ended. The phases share it by "
                                               "their estimated time.")
    phase = serializers.CharField(help_text="queued, preparing_data, training, evaluating, occlusion_maps or "
                                            "exporting; empty once the run has ended.")
    eta_seconds = serializers.FloatField(allow_null=True, help_text="Seconds left, every phase included; null "
                                                                     "unless the run is running.")


class RunBaseOutput(serializers.Serializer):
    """The fields of a run both in the list and in its own answer."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    dataset = RunDatasetOutput()
    architecture = serializers.CharField()
    optimizer = serializers.CharField()
    status = serializers.CharField(help_text="queued, running, succeeded, failed or cancelled")
    progress = serializers.SerializerMethodField()
    estimated_seconds = serializers.FloatField(
        allow_null=True, help_text="Wall time estimated when it was queued, from the training worker's measured "
                                   "speed (an upper bound: early stopping may end it sooner).")
    error = serializers.CharField(help_text="Machine-readable error code; empty unless it failed or was cancelled.")
    human_readable_error = serializers.CharField()
    param_count = serializers.IntegerField(allow_null=True)
    wall_time_s = serializers.FloatField(allow_null=True)
    best_epoch = serializers.IntegerField(allow_null=True)
    best_val_accuracy = serializers.FloatField(allow_null=True)
    epochs_done = serializers.SerializerMethodField()
    init_from_run = serializers.IntegerField(source="init_from_run_id", allow_null=True)
    retrain_of = serializers.IntegerField(source="retrain_of_id", allow_null=True,
                                          help_text="The run whose recipe it repeats on a newer dataset version.")
    cancel_requested = serializers.BooleanField()
    tags = serializers.ListField(child=serializers.CharField(), help_text="The owner's short labels for the run.")
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    baseline = serializers.SerializerMethodField(
        help_text="Always answering the commonest class of the run's evaluation split; null before evaluation.")
    active_model = serializers.SerializerMethodField(
        help_text="The model serving the requesting user's predictions, to weigh the run against.")
    waiting_behind = serializers.SerializerMethodField(
        help_text="While the run is queued: what the training workers are busy with now; empty otherwise.")

    @extend_schema_field(RunProgressOutput)
    def get_progress(self, run: TrainingRun) -> dict:
        return selectors.run_progress(run)

    def get_epochs_done(self, run: TrainingRun) -> int:
        return len(run.history)

    @extend_schema_field(BaselineOutput(allow_null=True))
    def get_baseline(self, run: TrainingRun) -> dict | None:
        return selectors.run_baseline(run)

    @extend_schema_field(ActiveModelOutput)
    def get_active_model(self, run: TrainingRun) -> dict:
        # Looked up once per answer, not once per run: a list's runs share the context.
        if "active_model" not in self.context:
            request = self.context.get("request")
            user = request.user if request is not None else run.owner
            self.context["active_model"] = selectors.active_model_summary_for(user)
        return self.context["active_model"]

    @extend_schema_field(training_queue.BusyWithOutput(many=True))
    def get_waiting_behind(self, run: TrainingRun) -> list[dict]:
        if run.status != TrainingRun.Status.QUEUED:
            return []
        if "busy_with" not in self.context:  # once per answer, as above
            request = self.context.get("request")
            user = request.user if request is not None else run.owner
            self.context["busy_with"] = training_queue.busy_with(user)
        return self.context["busy_with"]


class RunSummaryOutput(RunBaseOutput):
    """A run in the list: the recipe's headline and the summary metrics."""

    config = serializers.SerializerMethodField()
    metrics = serializers.SerializerMethodField()
    model_version = serializers.SerializerMethodField(help_text="Id of its latest model version.")

    @extend_schema_field(RunConfigSummaryOutput)
    def get_config(self, run: TrainingRun) -> dict:
        return {key: run.config.get(key) for key in ("epochs", "batch_size", "learning_rate")}

    @extend_schema_field(RunMetricsSummaryOutput)
    def get_metrics(self, run: TrainingRun) -> dict:
        return {key: run.metrics[key] for key in SUMMARY_METRICS if key in run.metrics}

    def get_model_version(self, run: TrainingRun) -> int | None:
        version = selectors.latest_model_version(run)
        return version.pk if version else None


class RunOutput(RunBaseOutput):
    """A run with its recipe, history and held-out metrics: GET /api/runs/{id}/ and the run pages."""

    config = serializers.DictField(help_text="The full recipe (TrainConfig).")
    history = serializers.ListField(child=serializers.DictField(), help_text="One run.epoch event per epoch.")
    last_batch = serializers.DictField(help_text="The latest run.batch event.")
    metrics = serializers.SerializerMethodField()
    attempts = serializers.IntegerField()
    worker = serializers.CharField()
    notes = serializers.CharField(help_text="The owner's notes on the run.")
    model_version = serializers.SerializerMethodField(help_text="Its latest model version.")

    @extend_schema_field(RunMetricsOutput)
    def get_metrics(self, run: TrainingRun) -> dict:
        return run.metrics

    @extend_schema_field(ModelVersionOutput(allow_null=True))
    def get_model_version(self, run: TrainingRun) -> dict | None:
        return model_version_data(selectors.latest_model_version(run), active_id=self.get_active_model(run)["id"])


# ---------------------------------------------------------------- runs


def recipe_overrides(data) -> dict:
    """The recipe fields a client sent beside the run's own fields (dataset, name, preset, ...)."""
    own = RunListCreateApi.InputSerializer._declared_fields
    return {key: value for key, value in data.items() if key not in own and key != "csrfmiddlewaretoken"}


def refusal(exc: services.RunError) -> Response:
    """A refused recipe as the API answers it: `invalid` with its fields, or a refusal of its own
    (too_much_memory) with the field it concerns."""
    if exc.code == "invalid":
        raise serializers.ValidationError({k: [v] for k, v in exc.errors.items()}) from exc
    return Response(error_body(exc.code, exc.detail, {k: [v] for k, v in exc.errors.items()}),
                    status=status.HTTP_400_BAD_REQUEST)


class RunListCreateApi(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        """The run's own fields; everything else is a TrainConfig field, validated by the recipe."""

        dataset = serializers.IntegerField()
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
        preset = serializers.CharField(
            required=False, allow_blank=True,
            help_text="Start from this preset's complete recipe (GET /api/runs/presets/); the recipe fields given "
                      "beside it override its values.")
        init_from_run = serializers.IntegerField(required=False, allow_null=True)
        init_checkpoint = serializers.FileField(required=False, allow_null=True)
        teacher_run = serializers.IntegerField(required=False, allow_null=True)
        teacher_model = serializers.CharField(
            required=False, allow_blank=True,
            help_text="Distil from a model version you can see (its id), or 'default' for the model the app ships with.")

        class Meta:
            ref_name = "RunCreate"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        estimated_seconds = serializers.FloatField(
            allow_null=True, help_text="Wall time estimated from the training worker's measured throughput.")
        notes = serializers.SerializerMethodField(
            help_text="What was changed to fit the training worker, e.g. num_threads lowered to its cores; also kept "
                      "in the run's metrics.notes.")

        class Meta:
            ref_name = "RunCreated"

        def get_notes(self, run: TrainingRun) -> list[str]:
            return run.metrics.get("notes", [])

    @extend_schema(
        operation_id="runs_create", request=InputSerializer,
        responses={
            201: OutputSerializer,
            400: OpenApiResponse(description="`invalid`: `fields` maps each bad field to messages that list the "
                                             "valid values. `too_much_memory`: the batch is estimated not to fit in "
                                             "the training worker's memory; the detail names the largest batch size "
                                             "that fits (GET /api/runs/limits/ lists them). `quota_exceeded`: your "
                                             "storage is full."),
            413: OpenApiResponse(description="`quota_exceeded`: the uploaded init_checkpoint would take your storage "
                                             "over its quota."),
            429: OpenApiResponse(description="`quota_exceeded`: you have as many runs queued or running as your "
                                             "quota allows (FERWEB_QUOTA_ACTIVE_RUNS)."),
        },
        description="Start a training run. Besides these fields, every recipe field of GET /api/recipe/ "
                    "(architecture, optimizer, epochs, batch_size, learning_rate, ...) may be given; missing ones "
                    "take the preset's values, or the defaults without a preset. A dataset too small to hold out "
                    "a validation split is refused (`fields.dataset`). num_threads above the training worker's cores is lowered to them (the "
                    "answer's `notes` say so). Queued runs are taken round-robin by user, oldest first for each.",
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        own = serializer.validated_data
        config = recipe_overrides(request.data)
        try:
            run = services.run_create_for(
                user=request.user, dataset_id=own["dataset"], config=config, name=own.get("name") or "",
                init_from_run_id=own.get("init_from_run"), init_checkpoint=own.get("init_checkpoint"),
                teacher_run_id=own.get("teacher_run"), teacher_model=own.get("teacher_model") or "",
                preset=own.get("preset") or None,
            )
        except services.RunError as exc:
            return refusal(exc)
        return Response(self.OutputSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="runs_list", responses=RunSummaryOutput(many=True),
                   parameters=[OpenApiParameter("tag", str, required=False,
                                                description="Only the runs that carry this tag.")])
    def get(self, request):
        runs = selectors.runs_tagged(selectors.run_list_for(request.user), request.query_params.get("tag", ""))
        return Response(RunSummaryOutput(runs, many=True, context={"request": request}).data)


RUN_ESTIMATE = inline_serializer("RunEstimate", {
    "estimated_seconds": serializers.FloatField(help_text="Wall time, every phase included; an upper bound when "
                                                          "early stopping may end the run sooner."),
    "phases": inline_serializer("RunEstimatePhases", {
        phase: serializers.FloatField(help_text=f"Seconds {what}.") for phase, what in (
            ("preparing_data", "to start the training process, read the faces and build the network"),
            ("training", "for every epoch's batches and validation pass"),
            ("evaluating", "for the evaluation of the best epoch on the held-out split"),
            ("occlusion_maps", "for the occlusion sensitivity maps"),
            ("exporting", "for the ONNX export and its checks"),
        )
    }),
    "basis": serializers.CharField(help_text="What the estimate rests on: which measurement, on which device."),
    "measured": serializers.BooleanField(help_text="False when this architecture and batch size have not been "
                                                   "measured on the training worker's device (the estimate is then "
                                                   "scaled from another measurement, or a rough guess)."),
})


class RunEstimateApi(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    @extend_schema(
        operation_id="runs_estimate", request=RunListCreateApi.InputSerializer,
        responses={200: RUN_ESTIMATE,
                   400: OpenApiResponse(description="The same refusals as POST /api/runs/: `invalid` (with `fields`) "
                                                    "or `too_much_memory`.")},
        description="How long the run that POST /api/runs/ would start with this body takes, phase by phase, "
                    "from the training worker's measured speed on its device. Nothing is created. A combination "
                    "of architecture and batch size not yet measured is estimated from the nearest measurement "
                    "(`measured` false) and measured in the background, so asking again later is more exact.",
    )
    def post(self, request):
        serializer = RunListCreateApi.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        own = serializer.validated_data
        try:
            estimate = services.run_estimate_for(user=request.user, dataset_id=own["dataset"],
                                                 config=recipe_overrides(request.data),
                                                 preset=own.get("preset") or None)
        except services.RunError as exc:
            return refusal(exc)
        return Response(estimate)


class RunDetailApi(APIView):
    parser_classes = [JSONParser, FormParser]

    class AnnotateSerializer(serializers.Serializer):
        # Typed here, checked by the service (run_annotate), whose messages name the limits.
        notes = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False,
                                      help_text=f"Free text, at most {services.MAX_NOTES:,} characters.")
        tags = serializers.ListField(
            child=serializers.CharField(allow_blank=True), required=False,
            help_text=f"The whole list (it replaces the old one): at most {services.MAX_TAGS} tags of 1-"
                      f"{services.MAX_TAG} characters each; spaces around a tag are trimmed, repeats kept once.")

        class Meta:
            ref_name = "RunAnnotate"

    @extend_schema(operation_id="runs_retrieve", responses=RunOutput)
    def get(self, request, pk):
        return Response(RunOutput(selectors.run_get_for(request.user, pk), context={"request": request}).data)

    @extend_schema(operation_id="runs_annotate", request=AnnotateSerializer, responses=RunOutput,
                   description="Set the run's notes and/or tags; fields left out stay as they are.")
    def patch(self, request, pk):
        run = selectors.run_get_for(request.user, pk)
        serializer = self.AnnotateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            run = services.run_annotate(run=run, **serializer.validated_data)
        except services.RunError as exc:
            raise serializers.ValidationError({k: [v] for k, v in exc.errors.items()}) from exc
        return Response(RunOutput(run, context={"request": request}).data)

    @extend_schema(
        operation_id="runs_destroy",
        responses={204: OpenApiResponse(description="Deleted."),
                   409: OpenApiResponse(description="`still_running`: the run is queued or running; cancel it "
                                                    "first. `in_use`: an unfinished run starts from or learns from "
                                                    "its weights.")},
        description="Deletes a finished run with its checkpoints, history and evaluation. Its model versions "
                    "stay and keep serving wherever they are active. When the run's dataset was deleted and "
                    "kept only for its runs, the last run's deletion removes it too. GET delete-preview/ first "
                    "says what goes and what it frees.",
    )
    def delete(self, request, pk):
        try:
            services.run_delete(run=selectors.run_get_for(request.user, pk))
        except services.RunError as exc:
            raise ApiError(exc.code, exc.detail, status=status.HTTP_409_CONFLICT) from exc
        return Response(status=status.HTTP_204_NO_CONTENT)


class RunDeletePreviewApi(APIView):
    @extend_schema(operation_id="runs_delete_preview", responses=DeletePreviewOutput,
                   description="What DELETE on the run would do (or why it would refuse): the sentence to "
                               "confirm and the bytes it frees.")
    def get(self, request, pk):
        preview = services.run_delete_preview(run=selectors.run_get_for(request.user, pk))
        return Response(DeletePreviewOutput(preview).data)


class RunCancelApi(APIView):
    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        status = serializers.CharField()
        cancel_requested = serializers.BooleanField()

        class Meta:
            ref_name = "RunCancelled"

    @extend_schema(operation_id="runs_cancel", request=None,
                   responses={200: OutputSerializer,
                              409: OpenApiResponse(description="`already_finished`: the run has already ended.")})
    def post(self, request, pk):
        run = selectors.run_get_for(request.user, pk)
        try:
            run = services.run_cancel_unfinished(run=run)
        except services.RunError as exc:
            raise ApiError(exc.code, exc.detail, status=status.HTTP_409_CONFLICT) from exc
        return Response(self.OutputSerializer(run).data)


class ConfusionFaceOutput(serializers.Serializer):
    item = serializers.IntegerField(help_text="The DatasetItem id (what actions/ takes).")
    index = serializers.IntegerField(allow_null=True, help_text="Its row in the dataset (the item PNG's {index}).")
    source_name = serializers.CharField(help_text="The face's file name (or CSV row) in the upload.")
    label = serializers.CharField(allow_null=True, help_text="Its label in the dataset now (after any relabel).")
    excluded = serializers.BooleanField(allow_null=True, help_text="Excluded from the dataset since.")
    probabilities = serializers.DictField(child=serializers.FloatField(),
                                          help_text="{class: p} as the run's exported model gives them.")
    confidence = serializers.FloatField(help_text="The probability of the predicted class.")
    image = serializers.CharField(help_text="URL of the 48x48 PNG of the face.")


class ConfusionCellOutput(serializers.Serializer):
    true = serializers.CharField()
    predicted = serializers.CharField()
    count = serializers.IntegerField(help_text="Faces in the cell (the confusion matrix's number).")
    faces = ConfusionFaceOutput(many=True, help_text="At most `limit`, the most confident first.")


def _evaluation_refusal(exc) -> Exception:
    """EvaluationMissing -> 404 no_evaluation_details; ActionRefused -> 400 on its field."""
    from training_jobs.evaluation_faces import EvaluationMissing

    if isinstance(exc, EvaluationMissing):
        return ApiError("no_evaluation_details", str(exc), status=status.HTTP_404_NOT_FOUND)
    return serializers.ValidationError({exc.field or "non_field_errors": [exc.message]})


class RunConfusionCellApi(APIView):
    @extend_schema(
        operation_id="runs_confusion_cell",
        parameters=[
            OpenApiParameter("true", str, required=True, enum=list(CLASSES), description="The true class (row)."),
            OpenApiParameter("predicted", str, required=True, enum=list(CLASSES),
                             description="The predicted class (column)."),
            OpenApiParameter("limit", int, required=False, description="Faces to list, 1-500 (default 50)."),
        ],
        responses={200: ConfusionCellOutput,
                   400: OpenApiResponse(description="`invalid`: an unknown class or limit."),
                   404: OpenApiResponse(description="No such run, or `no_evaluation_details`: the run finished "
                                                    "before runs kept the faces behind their confusion matrix.")},
        description="The evaluated faces behind one cell of the run's confusion matrix (true x, predicted y), the "
                    "most confident first, with their probabilities.",
    )
    def get(self, request, pk):
        from training_jobs.evaluation_faces import ActionRefused, EvaluationMissing, cell_faces

        run = selectors.run_get_for(request.user, pk)
        try:
            limit = int(request.query_params.get("limit", 50))
        except ValueError:
            raise serializers.ValidationError({"limit": ["limit is a whole number, 1-500."]}) from None
        try:
            cell = cell_faces(run, true=request.query_params.get("true", ""),
                              predicted=request.query_params.get("predicted", ""), limit=limit)
        except (ActionRefused, EvaluationMissing) as exc:
            raise _evaluation_refusal(exc) from exc
        return Response(ConfusionCellOutput(cell).data)


class RunConfusionReviewApi(APIView):
    parser_classes = [JSONParser]

    class InputSerializer(serializers.Serializer):
        items = serializers.ListField(child=serializers.IntegerField(), max_length=500, allow_empty=False,
                                     help_text="DatasetItem ids among the faces the run evaluated (confusion/ "
                                               "lists them).")

        class Meta:
            ref_name = "ConfusionReview"

    class OutputSerializer(serializers.Serializer):
        count = serializers.IntegerField(help_text="Faces sent.")
        detail = serializers.CharField(help_text="What happened, in a sentence.")
        labeling_set = inline_serializer("ReviewLabelingSet", {
            "id": serializers.IntegerField(), "name": serializers.CharField(),
            "url": serializers.CharField(help_text="Its page."),
        })

        class Meta:
            ref_name = "ConfusionReviewSent"

    @extend_schema(
        operation_id="runs_confusion_review", request=InputSerializer,
        responses={200: OutputSerializer,
                   400: OpenApiResponse(description="`invalid`: see fields (e.g. an item the run did not evaluate)."),
                   404: OpenApiResponse(description="No such run, or `no_evaluation_details`.")},
        description="Copies faces listed by confusion/ into a new labeling set, the run's prediction as each "
                    "face's proposal, for a person to look at again; the dataset is not changed. To relabel or "
                    "exclude a face: POST /api/datasets/{id}/items/{item}/.",
    )
    def post(self, request, pk):
        from training_jobs.evaluation_faces import ActionRefused, EvaluationMissing, evaluation_faces_review

        run = selectors.run_get_for(request.user, pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            sent = evaluation_faces_review(run=run, user=request.user, item_ids=serializer.validated_data["items"])
        except (ActionRefused, EvaluationMissing) as exc:
            raise _evaluation_refusal(exc) from exc
        return Response(self.OutputSerializer(sent).data)



# ---------------------------------------------------------------- train again on a newer dataset version


class RunRetrainApi(APIView):
    parser_classes = [JSONParser, FormParser]

    class InputSerializer(serializers.Serializer):
        force = serializers.BooleanField(
            default=False, help_text="Train again even when the dataset has not changed since the run (the same "
                                     "data again, e.g. to see how much results vary).")

        class Meta:
            ref_name = "RunRetrain"

    @extend_schema(
        operation_id="runs_retrain", request=InputSerializer,
        responses={
            201: RunListCreateApi.OutputSerializer,
            400: OpenApiResponse(description="The refusals of POST /api/runs/: `invalid` (e.g. `fields.dataset`: "
                                             "the dataset was deleted), `too_much_memory`, `quota_exceeded`."),
            404: OpenApiResponse(description="No such run."),
            409: OpenApiResponse(description="`no_new_version`: the dataset's newest version is the one the run "
                                             "trained on (or holds the same data); send `force: true` to train "
                                             "again anyway."),
            413: OpenApiResponse(description="`quota_exceeded`: the copy of the run's uploaded starting weights "
                                             "would take your storage over its quota."),
            429: OpenApiResponse(description="`quota_exceeded`: you have as many runs queued or running as your "
                                             "quota allows."),
        },
        description="Start a new run with the run's recipe on the newest version of its dataset (after relabels "
                    "and exclusions), named \"<name> (retrained on vN)\"; its `retrain_of` is the run. Starting "
                    "weights and a teacher whose files are gone are left out, and the answer's `notes` say so. "
                    "GET /api/runs/compare/data/?ids=<run>,<new run> then says what the data fixes bought.",
    )
    def post(self, request, pk):
        run = selectors.run_get_for(request.user, pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            created = services.run_retrain(user=request.user, run=run, force=serializer.validated_data["force"])
        except services.RunError as exc:
            if exc.code == "no_new_version":
                raise ApiError(exc.code, exc.detail, status=status.HTTP_409_CONFLICT) from exc
            return refusal(exc)
        return Response(RunListCreateApi.OutputSerializer(created).data, status=status.HTTP_201_CREATED)


class DataVersionOutput(serializers.Serializer):
    number = serializers.IntegerField()
    content_hash = serializers.CharField(help_text="SHA-256 of its faces, labels, splits and exclusions.")
    summary = serializers.CharField(help_text="Its change against the version before, in one line.")


class CommonFacesRunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    version = DataVersionOutput(help_text="The dataset version it trained on.")
    accuracy = serializers.FloatField(allow_null=True, help_text="Its own reported accuracy: its version's held-out "
                                                                 "faces, its version's labels.")
    evaluated = serializers.IntegerField(help_text="Faces its evaluation held.")
    common_accuracy = serializers.FloatField(allow_null=True, help_text="Accuracy on the common faces, against the "
                                                                        "newer version's labels; null without any.")
    common_recall = serializers.DictField(child=serializers.FloatField(allow_null=True),
                                          help_text="{class: recall on the common faces}; null for a class with "
                                                    "none of them.")


class CommonFacesOutput(serializers.Serializer):
    dataset = RunDatasetOutput()
    older = CommonFacesRunOutput(help_text="The run on the older version.")
    newer = CommonFacesRunOutput(help_text="The run on the newer version, whose labels score both.")
    common_faces = serializers.IntegerField(help_text="Faces both runs evaluated.")
    relabeled_faces = serializers.IntegerField(help_text="Common faces whose label differs between the versions.")
    class_counts = serializers.DictField(child=serializers.IntegerField(),
                                         help_text="{class: common faces}, by the newer version's labels.")
    versions = DataVersionOutput(many=True, help_text="The versions after the older run's, up to the newer run's.")
    changes = serializers.CharField(help_text="What changed from the older version to the newer, in one line.")
    explanation = serializers.CharField(help_text="Why the runs are scored on common faces, in one sentence.")


class RunCompareDataApi(APIView):
    @extend_schema(
        operation_id="runs_compare_data",
        parameters=[OpenApiParameter("ids", str, required=True,
                                     description="Two run ids, comma-separated: runs of one dataset trained on "
                                                 "different versions of it (e.g. a run and its retrain).")],
        responses={200: CommonFacesOutput,
                   400: OpenApiResponse(description="`invalid`: not two run ids. `different_datasets`, "
                                                    "`same_version`, `no_dataset_version`: runs this comparison "
                                                    "does not fit."),
                   404: OpenApiResponse(description="No such run, or `no_evaluation_details`: a run kept no "
                                                    "per-face evaluation.")},
        description="What the data fixes bought: both runs scored on the faces both evaluated, against the newer "
                    "version's labels (accuracy and per-class recall), beside each run's own reported accuracy, "
                    "with the versions between them. Own accuracies alone do not compare: each is measured on its "
                    "own version's held-out faces and labels, which differ once labels change.",
    )
    def get(self, request):
        from training_jobs import data_fixes
        from training_jobs.evaluation_faces import EvaluationMissing

        parts = [part.strip() for part in request.query_params.get("ids", "").split(",") if part.strip()]
        if len(parts) != 2 or not all(part.isdigit() for part in parts):
            raise serializers.ValidationError({"ids": ["Give two run ids, comma-separated, e.g. ids=12,15."]})
        runs = [selectors.run_get_for(request.user, int(part)) for part in parts]
        try:
            data = data_fixes.compare_on_common_faces(runs)
        except data_fixes.NotComparable as exc:
            raise ApiError(exc.code, str(exc)) from exc
        except EvaluationMissing as exc:
            raise _evaluation_refusal(exc) from exc
        return Response(CommonFacesOutput(data).data)


QUOTA = inline_serializer("Quota", {
    "limit": serializers.IntegerField(help_text="0: no quota."), "used": serializers.FloatField(),
    "setting": serializers.CharField(help_text="The environment variable that sets it."),
})
RUN_LIMITS = inline_serializer("RunLimits", {
    "training": inline_serializer("TrainingLimits", {
        "memory_mb": serializers.IntegerField(help_text="What one run's training process may use "
                                                        "(FERWEB_TRAIN_MAX_MEMORY_MB)."),
        "cores": serializers.IntegerField(help_text="num_threads above this is lowered to it "
                                                    "(FERWEB_TRAIN_MAX_THREADS)."),
        "max_attempts": serializers.IntegerField(help_text="Starts before a run whose worker died is failed."),
        "faces": serializers.IntegerField(help_text="The dataset size max_batch_size is for."),
        "optimizer": serializers.CharField(),
        "max_batch_size": serializers.DictField(child=serializers.IntegerField(),
                                                help_text="{architecture: largest batch size that fits} at 48x48."),
    }),
    "quotas": inline_serializer("Quotas", {
        "exempt": serializers.BooleanField(help_text="Staff have no quotas."),
        "active_runs": QUOTA, "active_jobs": QUOTA, "storage_mb": QUOTA,
    }),
})


class RunLimitsApi(APIView):
    @extend_schema(
        operation_id="runs_limits",
        responses={200: RUN_LIMITS, 404: OpenApiResponse(description="`dataset` names no dataset of yours.")},
        parameters=[OpenApiParameter("dataset", int, required=False,
                                     description="Size the batch limits for this dataset of yours (default: "
                                                 "FER2013's 35,887 faces).")],
        description="What a training run may use (memory, cores, the largest batch size of every architecture) "
                    "and your quotas with what you use of them. POST /api/runs/ refuses a batch over these "
                    "limits (400 too_much_memory) and a run over your quota (429 quota_exceeded).",
    )
    def get(self, request):
        faces = selectors.FER2013_FACES
        if request.query_params.get("dataset", "").isdigit():
            from ferweb.datasets.selectors import dataset_get_for

            faces = dataset_get_for(request.user, int(request.query_params["dataset"])).num_items
        return Response(selectors.run_limits_for(request.user, faces=faces))


# ---------------------------------------------------------------- architectures and recipe


def architecture_catalogue() -> list[dict]:
    """Every architecture's name, description, source, parameters and multiply-adds: recorded data,
    so the web process builds no network and imports no torch."""
    return catalogue.catalogue()


class ArchitectureListApi(APIView):
    @extend_schema(operation_id="architectures_list", responses=ARCHITECTURE)
    def get(self, request):
        return Response(architecture_catalogue())


class RecipeSchemaApi(APIView):
    """Every TrainConfig field with its type, default, choices, range and help."""

    @extend_schema(operation_id="recipe_fields", responses=RECIPE_FIELD)
    def get(self, request):
        from training_jobs.ml.config import TrainConfig

        return Response(TrainConfig.fields_schema())


class PresetListApi(APIView):
    """The ready-made recipes, and the one a new run opens on for the training worker's device."""

    @extend_schema(operation_id="runs_presets", responses=PRESET_LIST,
                   description="Each preset's complete recipe. POST /api/runs/ and /api/runs/estimate/ take "
                               "`preset` with any recipe fields on top.")
    def get(self, request):
        from training_jobs.ml import presets

        return Response({"default": presets.default_for(selectors.training_device()),
                         "presets": [preset.as_dict() for preset in presets.PRESETS.values()]})
