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

from ferweb.api_errors import ApiError, error_body
from fercore import catalogue
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
}, many=True)

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


class RunBaseOutput(serializers.Serializer):
    """The fields of a run both in the list and in its own answer."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.CharField(source="owner.username")
    dataset = RunDatasetOutput()
    architecture = serializers.CharField()
    optimizer = serializers.CharField()
    status = serializers.CharField(help_text="queued, running, succeeded, failed or cancelled")
    progress = serializers.FloatField(help_text="0-100")
    eta_seconds = serializers.FloatField(allow_null=True)
    error = serializers.CharField(help_text="Machine-readable error code; empty unless it failed or was cancelled.")
    human_readable_error = serializers.CharField()
    param_count = serializers.IntegerField(allow_null=True)
    wall_time_s = serializers.FloatField(allow_null=True)
    best_epoch = serializers.IntegerField(allow_null=True)
    best_val_accuracy = serializers.FloatField(allow_null=True)
    epochs_done = serializers.SerializerMethodField()
    init_from_run = serializers.IntegerField(source="init_from_run_id", allow_null=True)
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_epochs_done(self, run: TrainingRun) -> int:
        return len(run.history)


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
    model_version = serializers.SerializerMethodField(help_text="Its latest model version.")

    @extend_schema_field(RunMetricsOutput)
    def get_metrics(self, run: TrainingRun) -> dict:
        return run.metrics

    @extend_schema_field(ModelVersionOutput(allow_null=True))
    def get_model_version(self, run: TrainingRun) -> dict | None:
        return model_version_data(selectors.latest_model_version(run))


# ---------------------------------------------------------------- runs


class RunListCreateApi(APIView):
    parser_classes = [JSONParser, MultiPartParser, FormParser]

    class InputSerializer(serializers.Serializer):
        """The run's own fields; everything else is a TrainConfig field, validated by the recipe."""

        dataset = serializers.IntegerField()
        name = serializers.CharField(max_length=200, required=False, allow_blank=True)
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
                    "take their defaults. num_threads above the training worker's cores is lowered to them (the "
                    "answer's `notes` say so). Queued runs are taken round-robin by user, oldest first for each.",
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        own = serializer.validated_data
        config = {
            key: value for key, value in request.data.items()
            if key not in self.InputSerializer._declared_fields and key != "csrfmiddlewaretoken"
        }
        try:
            run = services.run_create_for(
                user=request.user, dataset_id=own["dataset"], config=config, name=own.get("name") or "",
                init_from_run_id=own.get("init_from_run"), init_checkpoint=own.get("init_checkpoint"),
                teacher_run_id=own.get("teacher_run"), teacher_model=own.get("teacher_model") or "",
            )
        except services.RunError as exc:
            if exc.code != "invalid":  # a refusal of its own (too_much_memory), with the field it concerns
                return Response(error_body(exc.code, exc.detail, {k: [v] for k, v in exc.errors.items()}),
                                status=status.HTTP_400_BAD_REQUEST)
            raise serializers.ValidationError({k: [v] for k, v in exc.errors.items()}) from exc
        return Response(self.OutputSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="runs_list", responses=RunSummaryOutput(many=True))
    def get(self, request):
        return Response(RunSummaryOutput(selectors.run_list_for(request.user), many=True).data)


class RunDetailApi(APIView):
    @extend_schema(operation_id="runs_retrieve", responses=RunOutput)
    def get(self, request, pk):
        return Response(RunOutput(selectors.run_get_for(request.user, pk)).data)


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
