"""What the training workers are busy with: the runs and cross-validation scans that hold them now.

Both kinds train on the `training` queue, so a queued run or scan waits behind either. Read through
the app registry, as ferweb.quotas does, so that the datasets app need not import the training app.
"""
from django.apps import apps
from django.utils import timezone
from rest_framework import serializers


class BusyWithOutput(serializers.Serializer):
    kind = serializers.CharField(help_text="run, or cross_validation (a label-error finder scan)")
    name = serializers.CharField(help_text="Which run or dataset, for your own work; empty for other users'.")
    mine = serializers.BooleanField()
    seconds_left = serializers.IntegerField(allow_null=True, help_text="About how long it still takes.")


def busy_with(user) -> list[dict]:
    """The running runs and cross-validation scans, oldest first, as [{kind: "run" | "cross_validation",
    name, mine, seconds_left}]. Other users' work is counted without its name; seconds_left is None
    when unknown."""
    TrainingRun = apps.get_model("training_jobs", "TrainingRun")
    LabelIssueScan = apps.get_model("datasets", "LabelIssueScan")
    busy = []
    for run in TrainingRun.objects.filter(status="running").order_by("started_at", "pk"):
        mine = run.owner_id == user.pk
        busy.append({"kind": "run", "name": f"run #{run.pk}" if mine else "", "mine": mine,
                     "seconds_left": round(run.eta_seconds) if run.eta_seconds is not None else None})
    scans = (LabelIssueScan.objects.filter(status="running", folds__isnull=False)
             .select_related("dataset").order_by("started_at", "pk"))
    for scan in scans:
        mine = scan.owner_id == user.pk
        left = None
        if scan.estimated_seconds and scan.started_at:
            left = max(0, round(scan.estimated_seconds - (timezone.now() - scan.started_at).total_seconds()))
        busy.append({"kind": "cross_validation", "name": f"“{scan.dataset.name}”" if mine else "", "mine": mine,
                     "seconds_left": left})
    return busy
