"""Pages: /predict/, /webcam/, /jobs/, /jobs/{id}/. Data comes from the API and the websockets."""
from django.contrib.auth.decorators import login_required
from django.shortcuts import render

from ferweb.core.classes import CLASSES

from . import selectors


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
