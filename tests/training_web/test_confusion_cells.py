"""The faces behind each cell of a run's confusion matrix: kept when a run is evaluated, listed by cell
(the most confident first), and relabeled, excluded or sent to labeling from the run's page.

Most runs here are stored finished, with an evaluation file written the way the worker writes it
(training_jobs.evaluation_faces.evaluation_save); one real run checks what the worker keeps."""
import io

import numpy as np
import onnxruntime as ort
import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections

from fercore.classes import CLASSES
from ferweb.datasets.models import DatasetItem
from ferweb.labeling.models import LabelingFace, LabelingSet
from tests.conftest import signup
from tests.training_web.chart_reading import shot, wait_for_chart
from tests.training_web.conftest import make_ready_dataset
from tests.training_web.test_results import finished_run
from training_jobs.evaluation_faces import evaluation_load, evaluation_path, evaluation_save
from training_jobs.models import TrainingRun

FEAR, SAD, HAPPY = CLASSES.index("fear"), CLASSES.index("sad"), CLASSES.index("happy")


def evaluated_run(owner, dataset, *, confused=4):
    """A finished run whose evaluation file holds the dataset's test faces: every face predicted as its
    own class, except `confused` happy faces taken for sad with confidences 0.9, 0.8, ...; the run's
    confusion matrix is counted from the same faces."""
    run = finished_run(owner, dataset)
    items = list(DatasetItem.objects.filter(dataset=dataset, split="test").order_by("index"))
    labels = np.array([item.label for item in items])
    predicted = labels.copy()
    probs = np.full((len(items), len(CLASSES)), 0.01, dtype=np.float32)
    happy = np.flatnonzero(labels == HAPPY)[:confused]
    assert len(happy) == confused, "the test split has too few happy faces"
    predicted[happy] = SAD
    probs[np.arange(len(items)), predicted] = 0.94
    for rank, k in enumerate(happy):  # the last happy face is the most confident mistake
        probs[k, SAD], probs[k, HAPPY] = 0.6 + 0.1 * rank, 0.34 - 0.1 * rank
    cm = np.zeros((7, 7), dtype=int)
    np.add.at(cm, (labels, predicted), 1)
    run.metrics = {**run.metrics, "confusion_matrix": cm.tolist(),
                   "confusion_matrix_normalized": (cm / np.maximum(cm.sum(1, keepdims=True), 1)).round(5).tolist()}
    run.save(update_fields=["metrics"])
    # As the worker does: positions in the rows it trained on, mapped to those rows' item ids.
    evaluation_save(run=run, evaluation={"indices": np.arange(len(items)), "labels": labels, "predicted": predicted,
                                         "probs": probs},
                    item_ids=np.array([item.pk for item in items]))
    return run, [items[k] for k in happy]


# ---------------------------------------------------------------- what a real run keeps


@pytest.mark.django_db(transaction=True)
def test_a_run_keeps_each_evaluated_face_as_its_confusion_matrix_counted_it(alice):
    dataset = make_ready_dataset(alice, per_class=30)
    # Excluded faces leave gaps between the rows the run trains on and the dataset's item order.
    excluded = list(DatasetItem.objects.filter(dataset=dataset).order_by("index").values_list("pk", flat=True)[:7])
    DatasetItem.objects.filter(pk__in=excluded).update(excluded=True)
    call_command("train", "--dataset", str(dataset.pk), "--user", "alice", "--architecture", "light_residual",
                 "--epochs", "2", "--batch-size", "16", "--num-threads", "1", "--seed", "1",
                 stdout=io.StringIO(), stderr=io.StringIO())
    run = TrainingRun.objects.get()
    assert run.status == "succeeded", run.human_readable_error

    evaluation = evaluation_load(run)
    assert evaluation.items.dtype == np.int64 and evaluation.labels.dtype == np.int8
    assert evaluation.probs.dtype == np.float16 and evaluation.probs.shape == (len(evaluation.items), 7)
    assert evaluation.confusion_matrix() == run.metrics["confusion_matrix"]
    # The items are the test split's, none excluded, with the labels they were evaluated under.
    items = {i.pk: i for i in DatasetItem.objects.filter(pk__in=evaluation.items.tolist())}
    assert sorted(items) == sorted(DatasetItem.objects.filter(dataset=dataset, split="test", excluded=False)
                                   .values_list("pk", flat=True))
    assert [items[int(i)].label for i in evaluation.items] == evaluation.labels.tolist()
    # The probabilities are the exported model's, temperature and all.
    pixels = np.load(dataset.pixels_path)[[items[int(i)].index for i in evaluation.items]]
    session = ort.InferenceSession(str(run.model_versions.get().path), providers=["CPUExecutionProvider"])
    logits = session.run(["logits"], {"input": pixels[:, None].astype(np.float32) / 255})[0]
    exported = np.exp(logits - logits.max(1, keepdims=True))
    exported /= exported.sum(1, keepdims=True)
    assert np.allclose(evaluation.probs.astype(np.float32), exported, atol=2e-3)


# ---------------------------------------------------------------- the API


@pytest.mark.django_db
class TestCellListing:
    def test_a_cell_lists_its_faces_most_confident_first(self, alice_api, alice, ready_dataset):
        run, confused = evaluated_run(alice, ready_dataset, confused=4)
        body = alice_api.get(f"/api/runs/{run.pk}/confusion/?true=happy&predicted=sad").json()
        assert body["true"] == "happy" and body["predicted"] == "sad"
        assert body["count"] == 4 == run.metrics["confusion_matrix"][HAPPY][SAD]
        assert [f["item"] for f in body["faces"]] == [item.pk for item in confused[::-1]]
        assert [f["confidence"] for f in body["faces"]] == pytest.approx([0.9, 0.8, 0.7, 0.6], abs=1e-3)
        face = body["faces"][0]
        assert face["probabilities"]["sad"] == face["confidence"] and set(face["probabilities"]) == set(CLASSES)
        assert face["label"] == "happy" and face["excluded"] is False
        assert face["image"] == f"/api/datasets/{ready_dataset.pk}/items/{confused[-1].index}.png"
        assert alice_api.get(face["image"]).status_code == 200

    def test_the_limit_cuts_the_list_not_the_count(self, alice_api, alice, ready_dataset):
        run, _ = evaluated_run(alice, ready_dataset)
        body = alice_api.get(f"/api/runs/{run.pk}/confusion/?true=sad&predicted=sad&limit=3").json()
        assert body["count"] == run.metrics["confusion_matrix"][SAD][SAD] > 3 and len(body["faces"]) == 3
        empty = alice_api.get(f"/api/runs/{run.pk}/confusion/?true=fear&predicted=sad").json()
        assert empty["count"] == 0 and empty["faces"] == []

    def test_an_unknown_class_is_refused_with_the_choices(self, alice_api, alice, ready_dataset):
        run, _ = evaluated_run(alice, ready_dataset)
        response = alice_api.get(f"/api/runs/{run.pk}/confusion/?true=contempt&predicted=sad")
        assert response.status_code == 400 and "angry, disgust" in response.json()["fields"]["true"][0]

    def test_a_run_from_before_the_file_answers_that_it_predates_it(self, alice_api, alice, ready_dataset):
        run = finished_run(alice, ready_dataset)
        response = alice_api.get(f"/api/runs/{run.pk}/confusion/?true=happy&predicted=sad")
        assert response.status_code == 404 and response.json()["code"] == "no_evaluation_details"
        assert "Train again" in response.json()["detail"]

    def test_another_users_run_does_not_exist_for_them(self, bob_api, alice, ready_dataset):
        run, _ = evaluated_run(alice, ready_dataset)
        assert bob_api.get(f"/api/runs/{run.pk}/confusion/?true=happy&predicted=sad").status_code == 404


@pytest.mark.django_db
class TestCellActions:
    def review(self, client, run, items):
        return client.post(f"/api/runs/{run.pk}/confusion/review/", {"items": items}, format="json")

    def test_a_relabel_through_the_datasets_item_shows_in_the_cell(self, alice_api, alice, ready_dataset):
        run, confused = evaluated_run(alice, ready_dataset)
        for item in confused[:2]:
            response = alice_api.post(f"/api/datasets/{ready_dataset.pk}/items/{item.pk}/", {"label": "sad"},
                                      format="json")
            assert response.status_code == 200, response.content
        excluded = alice_api.post(f"/api/datasets/{ready_dataset.pk}/items/{confused[2].pk}/", {"excluded": True},
                                  format="json")
        assert excluded.status_code == 200
        listed = alice_api.get(f"/api/runs/{run.pk}/confusion/?true=happy&predicted=sad").json()
        # The cell is what the run evaluated: the same faces, each with its label and state now.
        assert listed["count"] == 4
        now = {f["item"]: (f["label"], f["excluded"]) for f in listed["faces"]}
        assert now == {confused[0].pk: ("sad", False), confused[1].pk: ("sad", False),
                       confused[2].pk: ("happy", True), confused[3].pk: ("happy", False)}

    def test_review_copies_the_faces_into_a_labeling_set_with_the_runs_prediction(self, alice_api, alice,
                                                                                    ready_dataset):
        run, confused = evaluated_run(alice, ready_dataset)
        response = self.review(alice_api, run, [c.pk for c in confused])
        assert response.status_code == 200, response.content
        made = response.json()["labeling_set"]
        labeling_set = LabelingSet.objects.get(pk=made["id"])
        assert labeling_set.owner == alice and made["url"] == f"/labeling/{labeling_set.pk}/"
        assert response.json()["count"] == 4
        assert response.json()["detail"] == f"4 faces sent to the labeling set \u201c{labeling_set.name}\u201d for review."
        faces = list(labeling_set.faces.order_by("proposed_probability"))
        assert len(faces) == 4 and all(f.status == LabelingFace.Status.PENDING and f.crop_png for f in faces)
        assert all(f.proposed_label == SAD for f in faces)
        assert [f.proposed_probability for f in faces] == pytest.approx([0.6, 0.7, 0.8, 0.9], abs=1e-3)
        assert not DatasetItem.objects.filter(excluded=True).exists()  # the dataset is untouched

    def test_a_decision_on_a_dataset_a_run_trained_on_makes_a_new_version(self, alice_api, alice, ready_dataset):
        from ferweb.datasets import versions

        run, confused = evaluated_run(alice, ready_dataset)
        trained = versions.version_seal(ready_dataset)
        done = alice_api.post(f"/api/datasets/{ready_dataset.pk}/items/{confused[0].pk}/",
                              {"excluded": True, "source": "confusion"}, format="json")
        assert done.status_code == 200 and done.json()["excluded"] is True
        newest = versions.version_head(ready_dataset)
        assert newest.parent == trained and newest.source == "confusion" and newest.changes["excluded"] == 1
        assert self.review(alice_api, run, [confused[0].pk]).status_code == 200

    def test_faces_the_run_did_not_evaluate_are_refused(self, alice_api, alice, ready_dataset):
        run, _ = evaluated_run(alice, ready_dataset)
        training = DatasetItem.objects.filter(dataset=ready_dataset, split="train").first()
        response = self.review(alice_api, run, [training.pk])
        assert response.status_code == 400 and str(training.pk) in response.json()["fields"]["items"][0]
        assert not LabelingSet.objects.exists()

    def test_another_user_cannot_send_a_runs_faces(self, bob_api, alice, ready_dataset):
        run, confused = evaluated_run(alice, ready_dataset)
        assert self.review(bob_api, run, [confused[0].pk]).status_code == 404
        assert not LabelingSet.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_file_lives_in_the_runs_folder_and_goes_with_it(alice, ready_dataset, settings):
    from training_jobs.services import run_delete

    run, _ = evaluated_run(alice, ready_dataset)
    path = evaluation_path(run)
    assert path == settings.MEDIA_ROOT / "runs" / str(run.pk) / "evaluation.npz" and path.exists()
    run_delete(run=run)
    assert not path.exists()


# ---------------------------------------------------------------- in the browser


@pytest.mark.browser
def test_a_click_on_a_cell_lists_its_faces_and_one_can_be_excluded(live_asgi, page):
    signup(page, live_asgi.url, "vera")
    user = get_user_model().objects.get(username="vera")
    dataset = make_ready_dataset(user, per_class=40)
    run, confused = evaluated_run(user, dataset, confused=3)
    connections.close_all()  # the ORM calls above ran inside Playwright's loop

    page.goto(f"{live_asgi.url}/runs/{run.pk}/")
    wait_for_chart(page, "#confusion-counts")
    # The happy row, sad column of the counts matrix: plotly's click event, as a person's click sends it.
    page.evaluate("""() => {
        const chart = document.getElementById("confusion-counts");
        chart.emit("plotly_click", { points: [{ y: "happy", x: "sad" }] });
    }""")
    page.wait_for_selector("#confusion-cell-faces .cell-face")
    assert page.inner_text("#confusion-cell-title") == "happy taken for sad: 3 faces"
    cards = page.locator("#confusion-cell-faces .cell-face")
    assert [cards.nth(k).get_attribute("data-item") for k in range(3)] == [str(c.pk) for c in confused[::-1]]
    assert "sad 80%" in cards.nth(0).inner_text()

    cards.nth(0).locator("input[type=checkbox]").check()
    page.click("#confusion-cell-exclude")
    page.wait_for_function("document.getElementById('confusion-cell-outcome').textContent.includes('excluded')")
    assert page.inner_text("#confusion-cell-outcome").strip().startswith("1 face excluded from the dataset.")
    assert "excluded" in page.locator("#confusion-cell-faces .cell-face").nth(0).inner_text()
    assert DatasetItem.objects.get(pk=confused[-1].pk).excluded
    connections.close_all()
    shot(page, "confusion-cell")

    # Once a run has trained on the dataset, a decision makes a new version of it; the run keeps its own.
    from ferweb.datasets import versions

    trained = versions.version_seal(dataset)
    connections.close_all()
    cards.nth(1).locator("input[type=checkbox]").check()
    page.select_option("#confusion-cell-label", "fear")
    page.click("#confusion-cell-relabel")
    page.wait_for_function("document.querySelector('#confusion-cell-outcome').textContent.includes('relabeled')")
    assert "newest version records it" in page.inner_text("#confusion-cell-outcome")
    newest = versions.version_head(dataset)
    assert newest.parent == trained and newest.changes["relabeled"] == {"happy -> fear": 1}
    connections.close_all()
    cards.nth(1).locator("input[type=checkbox]").check()  # the relabeled face's card was redrawn, unticked
    page.click("#confusion-cell-review")
    page.wait_for_selector("#confusion-cell-outcome a")
    assert page.inner_text("#confusion-cell-outcome").startswith("1 face sent to the labeling set")
    assert LabelingSet.objects.get().faces.count() == 1
    connections.close_all()

    # A real click on a cell of the row-normalised matrix opens another cell.
    box = page.locator("#confusion-normalized .nsewdrag").bounding_box()
    side = box["width"] / 7
    page.mouse.click(box["x"] + side * (SAD + 0.5), box["y"] + box["height"] / 7 * (SAD + 0.5))
    page.wait_for_function("document.getElementById('confusion-cell-title').textContent.startsWith('sad recognised')")


@pytest.mark.django_db
def test_the_answers_match_the_schema(alice_api, alice, ready_dataset):
    from drf_spectacular.generators import SchemaGenerator

    from tests.test_api_shapes import check

    openapi = SchemaGenerator().get_schema(request=None, public=True)
    run, confused = evaluated_run(alice, ready_dataset)
    cell, review = "/api/runs/{id}/confusion/", "/api/runs/{id}/confusion/review/"
    check(openapi, alice_api.get(f"/api/runs/{run.pk}/confusion/?true=happy&predicted=sad"), cell)
    check(openapi, alice_api.get(f"/api/runs/{run.pk}/confusion/?true=happy&predicted=nope"), cell)
    old = finished_run(alice, ready_dataset)
    check(openapi, alice_api.get(f"/api/runs/{old.pk}/confusion/?true=happy&predicted=sad"), cell)
    for items in ([confused[0].pk], [], [10 ** 9]):
        check(openapi, alice_api.post(f"/api/runs/{run.pk}/confusion/review/", {"items": items}, format="json"),
              review, "post")
    check(openapi, alice_api.post(f"/api/runs/{old.pk}/confusion/review/", {"items": [1]}, format="json"),
          review, "post")
