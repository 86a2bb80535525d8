"""Train again on the newest version of a dataset with the same recipe, and what the data fixes bought.

A run records the dataset version it trains on; relabels and exclusions make newer versions. POST
/api/runs/{id}/retrain/ repeats the run's recipe on the newest one, and GET /api/runs/compare/data/
scores a run and its retrain on the faces both evaluated, against the newer version's labels. Runs here
are created by the service and stored finished, with evaluation files written the way the worker
writes them; the browser test lets a real worker train the retrain."""
import re
import time
from pathlib import Path

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import connections

from fercore.classes import CLASSES
from ferweb.datasets import services as dataset_services
from ferweb.datasets import versions
from ferweb.datasets.models import DatasetItem
from tests.conftest import signup
from tests.test_api_shapes import check
from tests.training_web.chart_reading import shot
from tests.training_web.conftest import make_ready_dataset
from training_jobs import services
from training_jobs.evaluation_faces import evaluation_save
from training_jobs.models import TrainingRun

RECIPE = {"architecture": "light_residual", "optimizer": "nadam", "epochs": 1, "batch_size": 16,
          "learning_rate": 0.002, "num_threads": 1, "seed": 7, "label_smoothing": 0.1}
HAPPY, SAD, SURPRISE = (CLASSES.index(c) for c in ("happy", "sad", "surprise"))  # the drawn classes


def trained_run(owner, dataset, *, accuracy=0.5, name="", **sources) -> TrainingRun:
    """A run created as POST /api/runs/ creates one (recording the dataset's newest version), then stored
    succeeded with its headline accuracy."""
    run = services.run_create(user=owner, dataset=dataset, config=dict(RECIPE), name=name, queue=False, **sources)
    TrainingRun.objects.filter(pk=run.pk).update(status="succeeded", progress=100, metrics={"accuracy": accuracy})
    run.refresh_from_db()
    return run


def relabel(owner, items, label: int):
    dataset_services.dataset_items_update(items=DatasetItem.objects.filter(pk__in=[i.pk for i in items]),
                                          label=label, user=owner)


def exclude(owner, items):
    dataset_services.dataset_items_update(items=DatasetItem.objects.filter(pk__in=[i.pk for i in items]),
                                          excluded=True, user=owner)


def faces_of(dataset, label: int, n: int, split: str = "test") -> list[DatasetItem]:
    return list(DatasetItem.objects.filter(dataset=dataset, label=label, split=split).order_by("index")[:n])


def write_evaluation(run, items, labels, predicted):
    """An evaluation file as the worker writes one: per face its item, true label and predicted class."""
    probs = np.full((len(items), len(CLASSES)), 0.02, dtype=np.float32)
    probs[np.arange(len(items)), predicted] = 0.88
    evaluation_save(run=run, evaluation={"indices": np.arange(len(items)), "labels": np.asarray(labels),
                                         "predicted": np.asarray(predicted), "probs": probs},
                    item_ids=np.array([item.pk for item in items]))


def retrain(client, run, **body):
    return client.post(f"/api/runs/{run.pk}/retrain/", body, format="json")


# ---------------------------------------------------------------- POST /api/runs/{id}/retrain/


@pytest.mark.django_db
class TestRetrain:
    def test_it_repeats_the_recipe_on_the_newest_version(self, alice_api, alice, ready_dataset):
        run = trained_run(alice, ready_dataset, name="baseline")
        assert run.dataset_version.number == 1
        relabel(alice, faces_of(ready_dataset, SURPRISE, 3), SAD)
        response = retrain(alice_api, run)
        assert response.status_code == 201, response.content
        assert set(response.json()) == {"id", "status", "estimated_seconds", "notes"}
        again = TrainingRun.objects.get(pk=response.json()["id"])
        assert again.status == "queued" and again.retrain_of == run and again.owner == alice
        assert again.config == run.config and again.config["label_smoothing"] == 0.1
        newest = versions.version_head(ready_dataset)
        assert again.dataset_version == newest and newest.number == 2 and newest.sealed
        assert newest.summary == "3 relabeled surprise -> sad"
        assert again.name == "baseline (retrained on v2)"
        run.refresh_from_db()
        assert run.dataset_version.number == 1  # the old run keeps the version it trained on
        assert alice_api.get(f"/api/runs/{again.pk}/").json()["retrain_of"] == run.pk

    def test_a_retrain_of_a_retrain_is_named_once(self, alice_api, alice, ready_dataset):
        run = trained_run(alice, ready_dataset, name="baseline")
        relabel(alice, faces_of(ready_dataset, SURPRISE, 1), SAD)
        first = TrainingRun.objects.get(pk=retrain(alice_api, run).json()["id"])
        exclude(alice, faces_of(ready_dataset, HAPPY, 2))
        second = TrainingRun.objects.get(pk=retrain(alice_api, first).json()["id"])
        assert (first.name, second.name) == ("baseline (retrained on v2)", "baseline (retrained on v3)")
        assert second.retrain_of == first and second.dataset_version.number == 3

    def test_nothing_changed_is_refused_unless_forced(self, alice_api, alice, ready_dataset):
        run = trained_run(alice, ready_dataset)
        response = retrain(alice_api, run)
        assert response.status_code == 409 and response.json()["code"] == "no_new_version"
        assert response.json()["detail"].startswith("Nothing changed: version 1 of dataset")
        assert "force" in response.json()["detail"]
        assert TrainingRun.objects.count() == 1
        forced = retrain(alice_api, run, force=True)
        assert forced.status_code == 201, forced.content
        again = TrainingRun.objects.get(pk=forced.json()["id"])
        assert again.dataset_version == run.dataset_version and again.retrain_of == run

    def test_edits_that_were_undone_later_count_as_no_change(self, alice_api, alice, ready_dataset, settings):
        run = trained_run(alice, ready_dataset)
        faces = faces_of(ready_dataset, SURPRISE, 2)
        relabel(alice, faces, SAD)
        versions.version_seal(ready_dataset)  # e.g. exported: the undo makes another version
        relabel(alice, faces, SURPRISE)
        assert versions.version_head(ready_dataset).number == 3
        response = retrain(alice_api, run)
        assert response.status_code == 409 and response.json()["code"] == "no_new_version"
        assert "same faces, labels and splits as version 1" in response.json()["detail"]

    def test_other_users_get_404_and_staff_may_retrain(self, bob_api, carol_api, alice, carol, ready_dataset):
        run = trained_run(alice, ready_dataset)
        relabel(alice, faces_of(ready_dataset, SURPRISE, 1), SAD)
        response = retrain(bob_api, run)
        assert response.status_code == 404 and TrainingRun.objects.count() == 1
        assert retrain(carol_api, run).status_code == 201
        assert TrainingRun.objects.get(retrain_of=run).owner == carol

    def test_a_non_boolean_force_is_refused(self, alice_api, alice, ready_dataset):
        run = trained_run(alice, ready_dataset)
        response = retrain(alice_api, run, force="sometimes")
        assert response.status_code == 400 and "force" in response.json()["fields"]

    def test_starting_weights_that_still_exist_are_kept(self, alice_api, alice, ready_dataset):
        earlier = trained_run(alice, ready_dataset)
        best = services.best_checkpoint_path(earlier)
        best.parent.mkdir(parents=True, exist_ok=True)
        best.write_bytes(b"weights")
        run = trained_run(alice, ready_dataset, init_from_run=earlier)
        relabel(alice, faces_of(ready_dataset, SURPRISE, 1), SAD)
        body = retrain(alice_api, run).json()
        again = TrainingRun.objects.get(pk=body["id"])
        assert again.init_from_run == earlier and again.config["init_checkpoint"] == str(best)
        assert body["notes"] == []

    def test_starting_weights_and_a_teacher_that_are_gone_are_dropped_with_a_note(self, alice_api, alice,
                                                                                   ready_dataset, model_file):
        earlier = trained_run(alice, ready_dataset)
        best = services.best_checkpoint_path(earlier)
        best.parent.mkdir(parents=True, exist_ok=True)
        best.write_bytes(b"weights")
        run = trained_run(alice, ready_dataset, init_from_run=earlier, teacher_model=model_file)
        assert run.config["teacher_checkpoint"].endswith("teacher.onnx")
        best.unlink()
        (run.workdir / "teacher.onnx").unlink()
        relabel(alice, faces_of(ready_dataset, SURPRISE, 1), SAD)
        response = retrain(alice_api, run)
        assert response.status_code == 201, response.content
        again = TrainingRun.objects.get(pk=response.json()["id"])
        assert again.config["init_checkpoint"] == "" and again.config["teacher_checkpoint"] == ""
        assert again.init_from_run is None
        notes = response.json()["notes"]
        assert any("starting weights" in note and "random weights" in note for note in notes), notes
        assert any("teacher" in note and "without a teacher" in note for note in notes), notes
        assert again.metrics["notes"] == notes

    def test_uploaded_starting_weights_are_copied_for_the_new_run(self, alice_api, alice, ready_dataset):
        from django.core.files.uploadedfile import SimpleUploadedFile

        run = trained_run(alice, ready_dataset, init_checkpoint=SimpleUploadedFile("imagenet.pt", b"weights"))
        relabel(alice, faces_of(ready_dataset, SURPRISE, 1), SAD)
        again = TrainingRun.objects.get(pk=retrain(alice_api, run).json()["id"])
        assert again.init_checkpoint.path != run.init_checkpoint.path  # deleting either run leaves the other whole
        assert again.config["init_checkpoint"] == again.init_checkpoint.path
        assert Path(again.init_checkpoint.path).read_bytes() == b"weights"

    def test_a_kept_teacher_model_is_copied_for_the_new_run(self, alice_api, alice, ready_dataset, model_file):
        run = trained_run(alice, ready_dataset, teacher_model=model_file)
        relabel(alice, faces_of(ready_dataset, SURPRISE, 1), SAD)
        again = TrainingRun.objects.get(pk=retrain(alice_api, run).json()["id"])
        assert again.config["teacher_checkpoint"] == str(again.workdir / "teacher.onnx")
        assert (again.workdir / "teacher.onnx").read_bytes() == model_file.read_bytes()

    def test_a_deleted_dataset_is_refused_with_the_reason(self, alice_api, alice, ready_dataset):
        run = trained_run(alice, ready_dataset)
        relabel(alice, faces_of(ready_dataset, SURPRISE, 1), SAD)
        dataset_services.dataset_delete(dataset=ready_dataset)  # archived: kept for its runs
        response = retrain(alice_api, run)
        assert response.status_code == 400 and "was deleted" in response.json()["fields"]["dataset"][0]
        assert TrainingRun.objects.count() == 1

    def test_the_answers_match_the_schema(self, alice_api, alice, ready_dataset, openapi):
        run = trained_run(alice, ready_dataset)
        check(openapi, retrain(alice_api, run), "/api/runs/{id}/retrain/", "post")
        relabel(alice, faces_of(ready_dataset, SURPRISE, 1), SAD)
        created = check(openapi, retrain(alice_api, run), "/api/runs/{id}/retrain/", "post")
        check(openapi, alice_api.get(f"/api/runs/{created['id']}/"), "/api/runs/{id}/")


@pytest.fixture(scope="module")
def openapi():
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


# ---------------------------------------------------------------- the run page


@pytest.mark.django_db
class TestRunPage:
    def page(self, client, user, run):
        client.force_login(user)
        return client.get(f"/runs/{run.pk}/").content.decode()

    def test_it_names_the_version_and_offers_to_train_again_on_a_newer_one(self, client, alice, ready_dataset):
        run = trained_run(alice, ready_dataset)
        html = self.page(client, alice, run)
        version = run.dataset_version
        assert f"drawn faces, version 1 · <code title=\"{version.content_hash}\">{version.content_hash[:7]}</code>" \
               f" (imported {version.num_items:,} faces)" in html
        assert "Train again" not in html
        relabel(alice, faces_of(ready_dataset, SURPRISE, 3), SAD)
        exclude(alice, faces_of(ready_dataset, HAPPY, 2, split="train"))
        html = self.page(client, alice, run)
        assert "Train again on version 2" in html
        assert "Since version 1, which this run trained on: 3 relabeled surprise -&gt; sad, 2 excluded." in html

    def test_a_retrain_links_to_its_run_and_to_the_comparison(self, client, alice, ready_dataset):
        run = trained_run(alice, ready_dataset)
        relabel(alice, faces_of(ready_dataset, SURPRISE, 1), SAD)
        again = services.run_retrain(user=alice, run=run)
        html = self.page(client, alice, again)
        assert f'<a href="/runs/{run.pk}/">run {run.pk}</a>' in html
        assert f'<a href="/runs/compare/?ids={run.pk},{again.pk}">Compare with run #{run.pk}</a>' in html
        assert "version 2 · " in html and "(1 relabeled surprise -&gt; sad)" in html
        assert "Train again" not in html  # it trains on the newest version already

    def test_a_run_from_before_versions_is_offered_the_edits_made_since(self, client, alice, ready_dataset):
        run = trained_run(alice, ready_dataset)
        TrainingRun.objects.filter(pk=run.pk).update(dataset_version=None)
        ready_dataset.versions.all().delete()
        relabel(alice, faces_of(ready_dataset, SURPRISE, 2), SAD)  # version 1 keeps the state before the edit
        run.refresh_from_db()
        html = self.page(client, alice, run)
        assert "Dataset version" not in html  # it recorded none
        assert "Train again on version 2" in html and "2 relabeled surprise -&gt; sad" in html


# ---------------------------------------------------------------- GET /api/runs/compare/data/


def runs_on_two_versions(owner, dataset):
    """Run A on version 1 and run B on version 2 (one surprise face relabeled sad, one happy face excluded),
    each with a hand-made evaluation; they share five faces:

        face       v1 label  A predicts   v2 label  B predicts
        happy1     happy     happy        happy     happy
        happy2     happy     sad          happy     happy
        sad1       sad       sad          sad       sad
        surprise1  surprise  surprise     surprise  sad
        x          surprise  surprise     sad       sad       (relabeled)
        y          happy     happy        -         -         (excluded: only A evaluated it)
        z          -         -            sad       sad       (only B evaluated it)
    """
    happy1, happy2, y = faces_of(dataset, HAPPY, 3)
    sad1, z = faces_of(dataset, SAD, 2)
    surprise1, x = faces_of(dataset, SURPRISE, 2)
    a = trained_run(owner, dataset, accuracy=0.61, name="A")
    write_evaluation(a, [happy1, happy2, sad1, surprise1, x, y], [HAPPY, HAPPY, SAD, SURPRISE, SURPRISE, HAPPY],
                     [HAPPY, SAD, SAD, SURPRISE, SURPRISE, HAPPY])
    relabel(owner, [x], SAD)
    exclude(owner, [y])
    b = trained_run(owner, dataset, accuracy=0.58, name="B")
    write_evaluation(b, [happy1, happy2, sad1, surprise1, x, z], [HAPPY, HAPPY, SAD, SURPRISE, SAD, SAD],
                     [HAPPY, HAPPY, SAD, SAD, SAD, SAD])
    return a, b


def nones(**known):
    return {name: known.get(name) for name in CLASSES}


@pytest.mark.django_db
class TestCommonFaces:
    def compare(self, client, *runs):
        return client.get(f"/api/runs/compare/data/?ids={','.join(str(r.pk) for r in runs)}")

    def test_both_runs_are_scored_on_the_common_faces_against_the_newer_labels(self, alice_api, alice,
                                                                             ready_dataset):
        a, b = runs_on_two_versions(alice, ready_dataset)
        body = self.compare(alice_api, a, b).json()
        assert body["common_faces"] == 5 and body["relabeled_faces"] == 1
        assert body["class_counts"] == {**{name: 0 for name in CLASSES}, "happy": 2, "sad": 2, "surprise": 1}
        older, newer = body["older"], body["newer"]
        assert (older["id"], newer["id"]) == (a.pk, b.pk)
        assert (older["version"]["number"], newer["version"]["number"]) == (1, 2)
        assert (older["accuracy"], newer["accuracy"]) == (0.61, 0.58)  # as each run reported it
        assert (older["evaluated"], newer["evaluated"]) == (6, 6)
        assert older["common_accuracy"] == pytest.approx(3 / 5) and newer["common_accuracy"] == pytest.approx(4 / 5)
        assert older["common_recall"] == nones(happy=0.5, sad=0.5, surprise=1.0)
        assert newer["common_recall"] == nones(happy=1.0, sad=1.0, surprise=0.0)
        assert body["versions"] == [{"number": 2, "content_hash": b.dataset_version.content_hash,
                                     "summary": "1 relabeled surprise -> sad, 1 excluded"}]
        assert body["changes"] == "1 relabeled surprise -> sad, 1 excluded"
        assert "faces both evaluated" in body["explanation"] and "version 2's labels" in body["explanation"]

    def test_the_order_of_the_ids_does_not_matter(self, alice_api, alice, ready_dataset):
        a, b = runs_on_two_versions(alice, ready_dataset)
        assert self.compare(alice_api, b, a).json() == self.compare(alice_api, a, b).json()

    def test_the_versions_between_are_listed_oldest_first(self, alice_api, alice, ready_dataset):
        a, _b = runs_on_two_versions(alice, ready_dataset)
        relabel(alice, faces_of(ready_dataset, HAPPY, 1, split="train"), SAD)
        c = trained_run(alice, ready_dataset, name="C")
        write_evaluation(c, faces_of(ready_dataset, HAPPY, 2), [HAPPY, HAPPY], [HAPPY, HAPPY])
        body = self.compare(alice_api, a, c).json()
        assert [v["number"] for v in body["versions"]] == [2, 3]
        assert body["versions"][1]["summary"] == "1 relabeled happy -> sad"
        assert body["changes"] == "2 relabeled (happy -> sad 1, surprise -> sad 1), 1 excluded"
        assert body["common_faces"] == 2 and body["older"]["common_accuracy"] == 0.5

    def test_pairs_it_does_not_fit_are_refused_with_a_reason(self, alice_api, alice, ready_dataset):
        a, b = runs_on_two_versions(alice, ready_dataset)
        same = trained_run(alice, ready_dataset, name="same version as B")
        response = self.compare(alice_api, b, same)
        assert response.status_code == 400 and response.json()["code"] == "same_version"
        other = trained_run(alice, make_ready_dataset(alice, per_class=8, name="other"))
        response = self.compare(alice_api, a, other)
        assert response.status_code == 400 and response.json()["code"] == "different_datasets"
        for ids in ("", f"{a.pk}", f"{a.pk},{b.pk},{same.pk}", "one,two"):
            response = alice_api.get(f"/api/runs/compare/data/?ids={ids}")
            assert response.status_code == 400 and "ids" in response.json()["fields"], ids

    def test_a_run_without_its_evaluation_faces_is_named(self, alice_api, alice, ready_dataset):
        a, _b = runs_on_two_versions(alice, ready_dataset)
        relabel(alice, faces_of(ready_dataset, HAPPY, 1, split="train"), SAD)
        bare = trained_run(alice, ready_dataset)
        response = self.compare(alice_api, a, bare)
        assert response.status_code == 404 and response.json()["code"] == "no_evaluation_details"

    def test_another_users_runs_do_not_exist_for_them(self, bob_api, alice, ready_dataset):
        a, b = runs_on_two_versions(alice, ready_dataset)
        assert self.compare(bob_api, a, b).status_code == 404

    def test_the_answer_matches_the_schema(self, alice_api, alice, ready_dataset, openapi):
        a, b = runs_on_two_versions(alice, ready_dataset)
        check(openapi, self.compare(alice_api, a, b), "/api/runs/compare/data/")
        check(openapi, alice_api.get(f"/api/runs/compare/data/?ids={a.pk},{a.pk}"), "/api/runs/compare/data/")

    def test_the_compare_page_shows_the_block_only_for_two_versions(self, client, alice, ready_dataset):
        a, b = runs_on_two_versions(alice, ready_dataset)
        client.force_login(alice)
        html = client.get(f"/runs/compare/?ids={a.pk},{b.pk}").content.decode()
        assert "What the data fixes bought" in html and "Accuracy on the 5 common faces" in html
        assert f'<td data-run="{a.pk}">60.0%</td><td data-run="{b.pk}">80.0%</td>' in html
        assert '<td>50.0%</td><td>100.0% <span class="muted">(+50.0 points)</span></td>' in html  # happy
        assert 'data-class="angry"' not in html  # no common face is angry
        same = trained_run(alice, ready_dataset)
        assert "What the data fixes bought" not in client.get(f"/runs/compare/?ids={b.pk},{same.pk}").content.decode()


# ---------------------------------------------------------------- in the browser


@pytest.mark.browser
def test_train_again_then_compare_in_the_browser(live_asgi, page):
    """The run page offers the newer version; the click starts the retrain (trained by the real worker) and
    opens its page, whose link leads to the comparison on common faces."""
    signup(page, live_asgi.url, "vera")
    user = get_user_model().objects.get(username="vera")
    dataset = make_ready_dataset(user, per_class=12)
    run = trained_run(user, dataset, accuracy=0.4, name="first try")
    test_faces = list(DatasetItem.objects.filter(dataset=dataset, split="test").order_by("index"))
    labels = [face.label for face in test_faces]
    write_evaluation(run, test_faces, labels, labels)  # every face right under version 1's labels
    relabel(user, [face for face in test_faces if face.label != SAD][:2], SAD)
    changes = versions.version_head(dataset).summary  # e.g. "2 relabeled (angry -> sad 1, happy -> sad 1)"
    connections.close_all()  # the ORM calls above ran inside Playwright's loop

    page.goto(f"{live_asgi.url}/runs/{run.pk}/")
    assert "version 1" in page.inner_text("#run-dataset-version")
    assert changes.startswith("2 relabeled") and changes in page.inner_text("#run-retrain")
    shot(page, "retrain-offer")
    page.click("text=Train again on version 2")
    page.wait_for_url(re.compile(rf"/runs/(?!{run.pk}/)\d+/$"))  # another run's page
    again = TrainingRun.objects.get(retrain_of=run)
    assert page.url.endswith(f"/runs/{again.pk}/") and again.name == "first try (retrained on v2)"
    assert "version 2" in page.inner_text("#run-dataset-version")
    connections.close_all()

    deadline = time.monotonic() + 240
    while TrainingRun.objects.get(pk=again.pk).status not in TrainingRun.FINISHED:
        assert time.monotonic() < deadline, "the retrain did not finish"
        time.sleep(1)
    assert TrainingRun.objects.get(pk=again.pk).status == "succeeded"
    connections.close_all()

    page.click(f"text=Compare with run #{run.pk}")
    page.wait_for_selector("#common-faces-table")
    n = len(test_faces)
    assert page.get_attribute("#common-faces-table tr[data-common-faces]", "data-common-faces") == str(n)
    assert page.inner_text(f"#common-faces-table td[data-run='{run.pk}']") == f"{100 * (n - 2) / n:.1f}%"
    assert "faces both evaluated" in page.inner_text("#common-faces-why")
    assert changes in page.inner_text("#common-faces-versions")
    shot(page, "common-faces")


def test_a_retrain_validates_on_the_faces_its_run_held_out(alice):
    """Without a validation split, a run holds out a stratified share of training; its retrain keeps those
    faces (not a share drawn again from the newer labels, which would share a tenth of them)."""
    dataset = make_ready_dataset(alice, per_class=60, splits=(1.0, 0.0, 0.0))
    run = trained_run(alice, dataset)
    _, _, older = services.run_splits(run.pk)
    old_ids = services.run_rows(run)[3]
    held = set(old_ids[older.val].tolist())
    assert older.val_source.startswith("10% of train")

    trained = [i for i in DatasetItem.objects.filter(dataset=dataset).order_by("index") if i.pk not in held]
    held_items = list(DatasetItem.objects.filter(pk__in=held).order_by("index"))
    relabel(alice, trained[:40], SURPRISE)  # enough relabels that a new draw would move the hold-out
    relabel(alice, held_items[:3], SURPRISE)
    exclude(alice, held_items[3:4])
    retrain = services.run_retrain(user=alice, run=run)
    _, data, newer = services.run_splits(retrain.pk)
    new_ids = services.run_rows(retrain)[3]
    assert set(new_ids[newer.val].tolist()) == held - {held_items[3].pk}
    assert newer.val_source == "val" and np.array_equal(newer.test, newer.val)
    assert all(data.labels[np.flatnonzero(new_ids == item.pk)[0]] == SURPRISE for item in held_items[:3])
    job, _ = services._job_for(retrain, onnx_path=Path("model.onnx"), version="v")  # what the worker trains on
    assert np.array_equal(job.splits, data.splits)

    relabel(alice, trained[40:45], SAD)  # a retrain of the retrain: still the first run's hold-out
    third = services.run_retrain(user=alice, run=retrain)
    third_ids = services.run_rows(third)[3]
    assert set(third_ids[services.run_splits(third.pk)[2].val].tolist()) == held - {held_items[3].pk}

    # With a validation split of its own, the dataset's split is used, as for any run.
    split_dataset = make_ready_dataset(alice, name="with splits")
    split_run = trained_run(alice, split_dataset)
    relabel(alice, faces_of(split_dataset, HAPPY, 2, split="train"), SAD)
    again = services.run_retrain(user=alice, run=split_run)
    assert services.run_splits(again.pk)[2].val_source == "val"
    assert np.array_equal(services.load_train_data(again).splits, services.run_rows(again)[2])
