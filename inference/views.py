"""Pages: /models/, /predict/, /webcam/, /jobs/, /jobs/{id}/. Data comes from the API and the websockets."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from fercore.classes import CLASSES

from . import api, selectors


@login_required
def predict_page(request):
    return render(request, "inference/predict.html", {"classes": CLASSES})


@login_required
def webcam_page(request):
    return render(request, "inference/webcam.html", {"classes": CLASSES})


@login_required
def job_list_page(request):
    jobs = selectors.job_list_for(request.user)[:100]
    return render(request, "inference/jobs.html", {"jobs": jobs})


@login_required
def job_detail_page(request, pk):
    job = selectors.job_get_for(request.user, pk)
    return render(request, "inference/job_detail.html", {"job": job, "classes": CLASSES})


def _param_count_text(row: dict) -> str:
    return f"{row['param_count']:,}" if row["param_count"] else "–"


@login_required
def model_list_page(request):
    active = selectors.active_model_for(request.user)
    versions = [api.model_version_data(v, active_id=active.model_version_id)
                for v in selectors.model_list_for(request.user)]
    # Everyone sees the site default version, so the list alone tells whether one is set.
    site_default = next((v for v in versions if v["is_site_default"]), None)
    shipped = api.shipped_model_data(active_id=active.model_version_id, site_default_set=site_default is not None)
    for row in [*versions, shipped]:
        row["param_count_text"] = _param_count_text(row)
    return render(request, "inference/models.html", {
        "versions": versions, "shipped": shipped, "active": active,
    })
