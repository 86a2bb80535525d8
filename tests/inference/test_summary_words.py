"""A face's summary in words: the emotion it showed most, and a tie said as a tie."""
import numpy as np
import pytest

from fercore.classes import CLASSES
from inference.tracking import FaceStats, headline

from ..conftest import signup


def stats_from(labels: list[str]) -> FaceStats:
    stats = FaceStats(CLASSES)
    for t, name in enumerate(labels):
        stats.add(float(t), np.eye(len(CLASSES))[CLASSES.index(name)])
    return stats


def test_an_exact_three_way_tie_reads_as_a_tie_not_as_the_first_class():
    summary = stats_from(["sad", "angry", "fear", "fear", "angry", "sad"]).summary(1)
    assert summary["dominant_classes"] == ["angry", "fear", "sad"]  # in class order
    assert summary["headline"] == "angry, fear and sad equally"
    assert "mostly" not in summary["headline"]


def test_a_two_way_tie_and_a_clear_winner():
    assert stats_from(["happy", "neutral"]).summary(1)["headline"] == "happy and neutral equally"
    clear = stats_from(["happy", "happy", "sad"]).summary(2)
    assert (clear["dominant"], clear["dominant_classes"], clear["headline"]) == ("happy", ["happy"], "mostly happy")


def test_a_face_never_read_says_so():
    assert headline([]) == "no emotion read"
    assert FaceStats(CLASSES).summary(3)["headline"] == "no emotion read"


@pytest.mark.browser
def test_the_job_page_says_a_tie_in_the_servers_words(live_asgi, page):
    from django.contrib.auth import get_user_model
    from django.db import connections

    from inference.models import InferenceJob

    signup(page, live_asgi.url, "tieuser")
    owner = get_user_model().objects.get(username="tieuser")
    face = stats_from(["angry", "fear", "sad"] * 2).summary(1)
    job = InferenceJob.objects.create(
        owner=owner, kind="video", status="succeeded", progress=100, source="inference_uploads/clip.avi",
        source_name="clip.avi", total=6, processed=6, num_faces=6,
        summary={"kind": "video", "items": 6, "unreadable": 0, "detections": 6, "classes": list(CLASSES),
                 "share": face["share"], "faces": [face]})
    connections.close_all()
    page.goto(f"{live_asgi.url}/jobs/{job.pk}/")
    heading = page.locator("#job-faces-summary .face-card h2")
    heading.wait_for()
    assert heading.inner_text() == "Face #1: angry, fear and sad equally"
