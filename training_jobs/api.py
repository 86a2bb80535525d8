"""REST API for runs, architectures and model versions. Thin: validate, call one service, serialize."""
from pathlib import Path

from django.conf import settings
from django.http import FileResponse, Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from ferweb.api_errors import error_body
from ferweb.core import catalogue
from ferweb.datasets.models import Dataset
from training_jobs import selectors, services
from training_jobs.models import ModelVersion, TrainingRun

# ---------------------------------------------------------------- output shapes


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


SUMMARY_METRICS = ("accuracy", "macro_f1", "macro_auc", "micro_auc")


def run_data(run: TrainingRun, *, full: bool = True) -> dict:
    data = {
        "id": run.pk,
        "name": run.name,
        "owner": run.owner.username,
        "dataset": {"id": run.dataset_id, "name": run.dataset.name},
        "architecture": run.architecture,
        "optimizer": run.optimizer,
        "status": run.status,
        "progress": run.progress,
        "eta_seconds": run.eta_seconds,
        "error": run.error,
        "human_readable_error": run.human_readable_error,
        "param_count": run.param_count,
        "wall_time_s": run.wall_time_s,
        "best_epoch": run.best_epoch,
        "best_val_accuracy": run.best_val_accuracy,
        "epochs_done": len(run.history),
        "init_from_run": run.init_from_run_id,
        "cancel_requested": run.cancel_requested,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }
    version = selectors.latest_model_version(run)
    if full:
        data.update(config=run.config, history=run.history, last_batch=run.last_batch, metrics=run.metrics,
                    attempts=run.attempts, worker=run.worker)
        data["model_version"] = model_version_data(version)
    else:
        data["config"] = {k: run.config.get(k) for k in ("epochs", "batch_size", "learning_rate")}
        data["metrics"] = {k: run.metrics.get(k) for k in SUMMARY_METRICS if k in run.metrics}
        data["model_version"] = version.pk if version else None
    return data



# ---------------------------------------------------------------- documented shapes (OpenAPI)


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


class RunOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.CharField()
    dataset = serializers.DictField()
    architecture = serializers.CharField()
    optimizer = serializers.CharField()
    status = serializers.CharField(help_text="queued, running, succeeded, failed or cancelled")
    progress = serializers.FloatField(help_text="0-100")
    eta_seconds = serializers.FloatField(allow_null=True)
    error = serializers.CharField(help_text="Machine-readable error code.")
    human_readable_error = serializers.CharField()
    param_count = serializers.IntegerField(allow_null=True)
    wall_time_s = serializers.FloatField(allow_null=True)
    best_epoch = serializers.IntegerField(allow_null=True)
    best_val_accuracy = serializers.FloatField(allow_null=True)
    epochs_done = serializers.IntegerField()
    init_from_run = serializers.IntegerField(allow_null=True)
    cancel_requested = serializers.BooleanField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    config = serializers.DictField(help_text="The full recipe (TrainConfig).")
    history = serializers.ListField(child=serializers.DictField(), help_text="One run.epoch event per epoch.")
    last_batch = serializers.DictField()
    metrics = serializers.DictField(
        help_text="accuracy, macro_f1, macro_auc, micro_auc, per_class, confusion_matrix, "
                  "confusion_matrix_normalized, roc {class: {fpr, tpr, auc}}, ece, occlusion, ...")
    model_version = ModelVersionOutput(allow_null=True)


class RunSummaryOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    status = serializers.CharField(help_text="queued, running, succeeded, failed or cancelled")
    progress = serializers.FloatField()
    architecture = serializers.CharField()
    metrics = serializers.DictField(help_text="accuracy, macro_f1, macro_auc, micro_auc")
    model_version = serializers.IntegerField(allow_null=True)


RUN_CREATED = inline_serializer("RunCreated", {
    "id": serializers.IntegerField(), "status": serializers.CharField(),
    "notes": serializers.ListField(child=serializers.CharField(),
                                   help_text="What was changed to fit the training worker, e.g. num_threads lowered "
                                             "to its cores; also kept in the run's metrics.notes."),
})
RUN_CANCELLED = inline_serializer("RunCancelled", {
    "id": serializers.IntegerField(), "status": serializers.CharField(), "cancel_requested": serializers.BooleanField(),
})
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
FIELD_ERRORS = OpenApiTypes.OBJECT

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

    @extend_schema(
        operation_id="runs_create", request=InputSerializer,
        responses={
            201: RUN_CREATED,
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
            run = create_run_for(request.user, own, config)
        except services.RunError as exc:
            if exc.code != "invalid":  # a refusal of its own (too_much_memory), with the field it concerns
                return Response(error_body(exc.code, exc.detail, {k: [v] for k, v in exc.errors.items()}),
                                status=status.HTTP_400_BAD_REQUEST)
            raise serializers.ValidationError({k: [v] for k, v in exc.errors.items()}) from exc
        return Response({"id": run.pk, "status": run.status, "notes": run.metrics.get("notes", [])},
                        status=status.HTTP_201_CREATED)

    @extend_schema(operation_id="runs_list", responses=RunSummaryOutput(many=True))
    def get(self, request):
        runs = selectors.run_list_for(request.user)
        return Response([run_data(run, full=False) for run in runs])


def create_run_for(user, own: dict, config: dict) -> TrainingRun:
    """Shared by the API and the form page: resolve ids the user may see, then call the service."""
    dataset = Dataset.objects.filter(pk=own["dataset"]).first()
    if dataset is None or not (user.is_staff or dataset.owner_id == user.pk):
        raise services.RunError({"dataset": f"no dataset {own['dataset']}; choose one of your ready datasets"})
    earlier = {}
    for field in ("init_from_run", "teacher_run"):
        if own.get(field):
            earlier[field] = selectors.run_list_for(user).filter(pk=own[field]).first()
            if earlier[field] is None:
                raise services.RunError({field: f"no run {own[field]}"})
    return services.run_create(
        user=user, dataset=dataset, config=config, name=own.get("name") or "",
        init_from_run=earlier.get("init_from_run"), init_checkpoint=own.get("init_checkpoint"),
        teacher_run=earlier.get("teacher_run"), teacher_model=teacher_model_file(user, own.get("teacher_model")),
    )


def teacher_model_file(user, choice) -> Path | None:
    """The ONNX file behind a teacher_model choice: 'default' (the shipped model) or a visible version id."""
    choice = str(choice or "").strip()
    if not choice:
        return None
    if choice == "default":
        path = Path(settings.FERWEB_DEFAULT_MODEL)
        if not path.exists():
            raise services.RunError({"teacher_model": "this installation ships no default model"})
        return path
    version = selectors.model_list_for(user).filter(pk=int(choice)).first() if choice.isdigit() else None
    if version is None or not version.path.exists():
        raise services.RunError({"teacher_model": f"no model {choice}; give a model version id or default"})
    return version.path


class RunDetailApi(APIView):
    @extend_schema(operation_id="runs_retrieve", responses=RunOutput)
    def get(self, request, pk):
        return Response(run_data(selectors.run_get_for(request.user, pk)))


class RunCancelApi(APIView):
    @extend_schema(operation_id="runs_cancel", request=None, responses={200: RUN_CANCELLED, 409: OpenApiTypes.OBJECT})
    def post(self, request, pk):
        run = selectors.run_get_for(request.user, pk)
        if run.is_finished:
            return Response(
                {"detail": f"run {run.pk} already {run.status}; only queued or running runs can be cancelled"},
                status=status.HTTP_409_CONFLICT,
            )
        run = services.run_cancel(run=run)
        return Response({"id": run.pk, "status": run.status, "cancel_requested": run.cancel_requested})


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


# ---------------------------------------------------------------- models


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
