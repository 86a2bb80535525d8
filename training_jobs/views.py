"""Pages for runs. They render a skeleton plus the data as JSON; runs.js (run_form.js for the new-run
form) draws the rest."""
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render

from fercore.classes import CLASSES
from ferweb.datasets.models import Dataset
from ferweb.quotas import QuotaExceeded
from inference import selectors as registry
from training_jobs import api, data_fixes, selectors, services
from training_jobs.models import TrainingRun

GROUP_TITLES = {
    "recipe": "Model and optimisation",
    "schedule": "Learning-rate schedule and stopping",
    "augmentation": "Augmentation",
    "data": "Validation split and reproducibility",
    "transfer": "Transfer learning",
    "export": "Evaluation and export",
    "hardware": "Hardware",
}


def architecture_label(architecture: dict) -> str:
    """e.g. "fast_resnet · 1,236,903 parameters · 41M multiply-adds" (per face)."""
    return (f"{architecture['name']} · {architecture['param_count']:,} parameters · "
            f"{architecture['macs'] / 1e6:,.0f}M multiply-adds")


def _recipe_fields(values: dict, errors: dict) -> tuple[list[dict], list[dict]]:
    """fields_schema() for the form, each field with its current value and error: (the basic fields,
    the advanced ones in their groups)."""
    from training_jobs.ml.config import TrainConfig

    architectures = {a["name"]: a for a in api.architecture_catalogue()}
    basic, groups = [], {}
    for field in TrainConfig.fields_schema():
        if field["name"] in services.PATH_FIELDS:
            continue  # set from the choices of earlier runs and uploads, never typed as a path
        field = dict(field)
        field["value"] = values.get(field["name"], field["default"])
        field["error"] = errors.get(field["name"], "")
        if field["name"] == "architecture":
            field["options"] = [
                {"value": c, "label": architecture_label(architectures[c]) if c in architectures else c,
                 "description": architectures.get(c, {}).get("description", "")}
                for c in field["choices"]
            ]
        elif field["choices"]:
            names = field["choice_labels"] or {}
            field["options"] = [{"value": c, "label": names.get(c, c), "description": ""} for c in field["choices"]]
        if field["type"] == "float":
            field["step"] = "any"
        if field["basic"]:
            basic.append(field)
            continue
        group = groups.setdefault(field["group"], {"name": field["group"],
                                                   "title": GROUP_TITLES.get(field["group"], field["group"]),
                                                   "fields": []})
        group["fields"].append(field)
    return basic, list(groups.values())


# The run's own fields the form posts beside the recipe.
OWN_FIELDS = ("dataset", "name", "preset", "init_from_run", "teacher_run", "teacher_model", "init_checkpoint")


@login_required
def run_new(request):
    """The new-run form. It opens on the preset that suits the training worker's device, so its
    initial values are that preset's recipe; run_form.js swaps presets and asks for the estimate."""
    from training_jobs.ml import presets

    default_preset = presets.default_for(selectors.training_device())
    errors: dict[str, str] = {}
    values: dict = {}
    if request.method == "POST":
        values = {k: v for k, v in request.POST.items() if k != "csrfmiddlewaretoken"}
        # Unchecked checkboxes are absent from a form post: the form marks which ones it showed.
        for name in request.POST.getlist("_booleans"):
            values[name] = name in request.POST
        values.pop("_booleans", None)
        own = {
            "dataset": values.pop("dataset", ""),
            "name": values.pop("name", ""),
            "preset": values.pop("preset", ""),
            "init_from_run": values.pop("init_from_run", "") or None,
            "teacher_run": values.pop("teacher_run", "") or None,
            "teacher_model": values.pop("teacher_model", ""),
            "init_checkpoint": request.FILES.get("init_checkpoint"),
        }
        try:
            own["dataset"] = int(own["dataset"])
            for field in ("init_from_run", "teacher_run"):
                own[field] = int(own[field]) if own[field] else None
            run = services.run_create_for(
                user=request.user, dataset_id=own["dataset"], config=values, name=own["name"] or "",
                init_from_run_id=own["init_from_run"], init_checkpoint=own["init_checkpoint"],
                teacher_run_id=own["teacher_run"], teacher_model=own["teacher_model"] or "",
                preset=own["preset"] or None,
            )
        except ValueError:
            errors["dataset"] = "choose one of your ready datasets"
        except services.RunError as exc:
            errors = exc.errors
        except QuotaExceeded as exc:
            errors = {"form": str(exc.detail)}
        else:
            return redirect("run-detail", pk=run.pk)
        values.update(dataset=own["dataset"], name=own["name"], init_from_run=own["init_from_run"],
                      teacher_run=own["teacher_run"], teacher_model=own["teacher_model"])
        selected = own["preset"] if own["preset"] in presets.PRESETS else ""
    else:
        selected = default_preset
        values = presets.apply_preset(selected)
    basic, groups = _recipe_fields(values, errors)
    # Only the columns the form shows: runs and datasets carry large JSON (metrics, history, reports).
    datasets = [
        {"pk": pk, "label": f"#{pk} {name} · {faces:,} faces"}
        for pk, name, faces in Dataset.objects.filter(owner=request.user, status=Dataset.Status.READY,
                                                      archived_at__isnull=True)
        .order_by("-created_at").values_list("pk", "name", "num_items")
    ]
    earlier = (TrainingRun.objects.filter(owner=request.user, status=TrainingRun.Status.SUCCEEDED)
               .order_by("-created_at").only("pk", "name"))
    return render(request, "runs/new.html", {
        "basic_fields": basic,
        "groups": groups,
        "advanced_open": any(f["error"] for group in groups for f in group["fields"])
        or any(errors.get(name) for name in OWN_FIELDS[3:]),
        "presets": [preset.as_dict() for preset in presets.PRESETS.values()],
        "selected_preset": selected,
        "default_preset": default_preset,
        "datasets": datasets,
        "earlier_runs": earlier,
        "teacher_models": registry.model_list_for(request.user).values("pk", "version", "architecture"),
        "ships_default_model": Path(settings.FERWEB_DEFAULT_MODEL).exists(),
        "values": values,
        "errors": errors,
    })


@login_required
def run_list(request):
    tag = request.GET.get("tag", "").strip()
    runs = list(selectors.runs_tagged(selectors.run_list_for(request.user), tag))
    rows = api.RunSummaryOutput(runs, many=True, context={"request": request}).data
    for run, row in zip(runs, rows):
        row["created_at"] = run.created_at  # the template formats the date itself
    return render(request, "runs/list.html", {"runs": rows, "tag": tag})


@login_required
def run_detail(request, pk):
    run = selectors.run_get_for(request.user, pk)
    run_data = api.RunOutput(run, context={"request": request}).data
    return render(request, "runs/detail.html", {"run": run, "run_data": run_data, "classes": CLASSES,
                                                "data_versions": data_fixes.run_page_versions(run)})


@login_required
def run_compare(request):
    ids = [part for part in request.GET.get("ids", "").split(",") if part.strip().isdigit()]
    runs = list(selectors.run_list_for(request.user).filter(pk__in=ids).order_by("pk"))
    return render(request, "runs/compare.html", {
        "runs": runs, "runs_data": api.RunOutput(runs, many=True, context={"request": request}).data,
        "classes": CLASSES, "recipe_fields": _compare_fields(),
        "common_faces": data_fixes.compare_page_block(runs) if len(runs) == 2 else None,
    })


def _compare_fields() -> list[dict]:
    """Every recipe setting as the compare table names it: {name, label, group (its title)}."""
    from training_jobs.ml.config import TrainConfig

    return [{"name": f["name"], "label": f.get("label") or f["name"].replace("_", " "),
             "group": GROUP_TITLES.get(f["group"], f["group"])} for f in TrainConfig.fields_schema()]
