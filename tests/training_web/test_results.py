"""Results a newcomer can read: each run's accuracy beside the majority baseline and the active model,
a warning below the baseline, "Make active" that asks first, and the compare page (every setting side
by side with the differences marked, curves, recall per class, the confusion matrices' difference).
Runs are stored finished, with their history and metrics: no training."""
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from fercore.classes import CLASSES
from inference.models import ActiveModelChoice
from tests.conftest import signup
from tests.inference.conftest import make_version
from tests.training_web.chart_reading import axis_title, figure, shot, ticks, wait_for_chart
from tests.training_web.conftest import make_ready_dataset
from training_jobs.models import TrainingRun

# An evaluation split of 1,000 faces where happy is the commonest class: always answering happy scores 25.1%.
SUPPORT = {"angry": 140, "disgust": 15, "fear": 143, "happy": 251, "sad": 170, "surprise": 111, "neutral": 170}


def evaluation(accuracy, recalls):
    """Stored held-out metrics with the given accuracy and per-class recall (the confusion matrix follows)."""
    k = len(CLASSES)
    normalized = np.zeros((k, k))
    for i, c in enumerate(CLASSES):
        normalized[i, i] = recalls[c]
        normalized[i, (i + 1) % k] = 1 - recalls[c]  # the misses all go to the next class
    counts = np.rint(normalized * np.array([SUPPORT[c] for c in CLASSES])[:, None]).astype(int)
    return {
        "accuracy": accuracy, "macro_f1": accuracy * 0.9, "macro_auc": 0.5 + accuracy / 2, "micro_auc": 0.8,
        "test_split": "test",
        "per_class": {c: {"precision": recalls[c], "recall": recalls[c], "f1": recalls[c], "specificity": 0.9,
                          "support": SUPPORT[c], "auc": 0.8} for c in CLASSES},
        "confusion_matrix": counts.tolist(),
        "confusion_matrix_normalized": np.round(normalized, 5).tolist(),
        "roc": {c: {"fpr": [0, 0.2, 1], "tpr": [0, 0.7, 1], "auc": 0.8} for c in CLASSES},
    }


def history(epochs, start):
    return [{"type": "run.epoch", "epoch": e, "epochs": epochs, "train_loss": 2.0 - 0.1 * e, "val_loss": 2.1 - 0.1 * e,
             "train_accuracy": start + 0.03 * e, "val_accuracy": start + 0.02 * e, "best_val_accuracy": start + 0.02 * e}
            for e in range(1, epochs + 1)]


def finished_run(owner, dataset, *, accuracy=0.5, recall=0.5, learning_rate=0.01, status="succeeded", **recalls):
    per_class = {c: recalls.get(c, recall) for c in CLASSES}
    config = {"architecture": "fast_resnet", "optimizer": "sgd", "epochs": 3, "batch_size": 16,
              "learning_rate": learning_rate, "momentum": 0.9, "hflip": True}
    return TrainingRun.objects.create(
        owner=owner, dataset=dataset, name=f"lr {learning_rate}", architecture="fast_resnet", optimizer="sgd",
        config=config, status=status, progress=100 if status == "succeeded" else 0,
        history=history(3, 0.2) if status == "succeeded" else [],
        metrics=evaluation(accuracy, per_class) if status == "succeeded" else {},
        best_epoch=3 if status == "succeeded" else None, best_val_accuracy=accuracy if status == "succeeded" else None,
        param_count=1_236_903, wall_time_s=95.0,
    )


def version_of(run, name, accuracy):
    """The run's model version, with the headline of its metrics."""
    version = make_version(run.owner, name, run=run)
    version.architecture = run.architecture
    version.metrics = {"accuracy": accuracy, "per_class": run.metrics["per_class"]}
    version.save()
    return version


# ---------------------------------------------------------------- the API


@pytest.mark.django_db
class TestBaselineAndActiveModel:
    def test_a_succeeded_run_carries_its_majority_baseline(self, alice_api, alice, ready_dataset):
        run = finished_run(alice, ready_dataset, accuracy=0.135)
        body = alice_api.get(f"/api/runs/{run.pk}/").json()
        assert body["baseline"] == {"majority_class": "happy", "majority_accuracy": pytest.approx(0.251)}
        listed = alice_api.get("/api/runs/").json()[0]
        assert listed["baseline"] == body["baseline"] and listed["metrics"]["accuracy"] == 0.135

    def test_an_unevaluated_run_has_no_baseline(self, alice_api, alice, ready_dataset):
        run = finished_run(alice, ready_dataset, status="queued")
        assert alice_api.get(f"/api/runs/{run.pk}/").json()["baseline"] is None

    def test_the_active_model_is_the_requesting_users_with_its_accuracy(self, alice_api, alice, ready_dataset):
        run = finished_run(alice, ready_dataset, accuracy=0.693)
        mine = version_of(run, "alice-v1", 0.693)
        ActiveModelChoice.objects.create(user=alice, model_version=mine)
        body = alice_api.get(f"/api/runs/{run.pk}/").json()
        assert body["active_model"] == {"id": mine.pk, "version": "alice-v1", "accuracy": 0.693}
        assert body["model_version"]["is_active"] is True

    def test_without_a_choice_the_shipped_model_is_the_active_one(self, alice_api, alice, ready_dataset):
        from inference.selectors import shipped_model

        run = finished_run(alice, ready_dataset)
        active = alice_api.get(f"/api/runs/{run.pk}/").json()["active_model"]
        assert active == {"id": None, "version": shipped_model().version,
                          "accuracy": shipped_model().metrics.get("accuracy")}

    def test_another_users_active_model_is_not_leaked(self, alice_api, carol_api, alice, carol, ready_dataset):
        run = finished_run(alice, ready_dataset)
        mine = version_of(run, "alice-v1", 0.693)
        ActiveModelChoice.objects.create(user=alice, model_version=mine)
        # carol (staff) sees alice's run, weighed against carol's own active model, not alice's.
        for body in (carol_api.get(f"/api/runs/{run.pk}/").json(), carol_api.get("/api/runs/").json()[0]):
            assert body["id"] == run.pk
            assert body["active_model"]["id"] is None and body["active_model"]["version"] != "alice-v1"

    def test_the_list_looks_up_the_active_model_once(self, alice_api, alice, ready_dataset):
        for lr in (0.1, 0.01, 0.001, 0.0001):
            finished_run(alice, ready_dataset, learning_rate=lr)
        with CaptureQueriesContext(connection) as queries:
            runs = alice_api.get("/api/runs/").json()
        assert len(runs) == 4 and len({str(r["active_model"]) for r in runs}) == 1
        choice_lookups = [q for q in queries.captured_queries if "activemodelchoice" in q["sql"].lower()]
        assert len(choice_lookups) == 1


# ---------------------------------------------------------------- server-rendered pages


@pytest.mark.django_db
def test_the_list_shows_accuracy_as_a_percent_and_marks_a_run_below_its_baseline(client, alice, ready_dataset):
    weak = finished_run(alice, ready_dataset, accuracy=0.135)
    good = finished_run(alice, ready_dataset, accuracy=0.693)
    client.force_login(alice)
    page = client.get("/runs/").content.decode()
    cell = lambda run: page.split(f'data-run="{run.pk}"')[1].split("</tr>")[0]  # noqa: E731
    assert "13.5%" in cell(weak) and "0.135" not in cell(weak) and "data-below-baseline" in cell(weak)
    assert "always answering happy (25.1%)" in cell(weak)
    assert "69.3%" in cell(good) and "data-below-baseline" not in cell(good)


@pytest.mark.django_db
def test_the_number_filters_round_as_the_page_scripts_do():
    from frontend.templatetags.fer import number, percent

    # Number.toFixed rounds the exact binary value, halves away from zero: 100 * 0.1345 is 13.450000000000001.
    assert [percent(0.135), percent(0.1345), percent(1), percent(None), percent("")] == ["13.5%", "13.5%", "100.0%", "–", "–"]
    assert [number(0.5), number(0.12345, 2), number(None)] == ["0.500", "0.12", "–"]


@pytest.mark.django_db
def test_the_compare_page_gets_every_recipe_setting_with_a_label(client, alice, ready_dataset):
    import json
    import re

    from training_jobs.ml.config import TrainConfig

    runs = [finished_run(alice, ready_dataset, learning_rate=lr) for lr in (0.1, 0.01)]
    client.force_login(alice)
    page = client.get(f"/runs/compare/?ids={runs[0].pk},{runs[1].pk}").content.decode()
    fields = json.loads(re.search(r'<script id="recipe-fields" type="application/json">(.*?)</script>', page, re.S).group(1))
    assert [f["name"] for f in fields] == [f["name"] for f in TrainConfig.fields_schema()]
    assert all(f["label"] and "_" not in f["label"] for f in fields)


# ---------------------------------------------------------------- in the browser


@pytest.fixture
def user_page(live_asgi, page):
    signup(page, live_asgi.url, "rita")
    user = get_user_model().objects.get(username="rita")
    yield page, user, make_ready_dataset(user, per_class=4)
    connections.close_all()  # the ORM calls above ran inside Playwright's loop


@pytest.mark.browser
def test_compare_marks_the_setting_that_differs_and_draws_recall_and_the_matrix_difference(live_asgi, user_page):
    page, user, dataset = user_page
    a = finished_run(user, dataset, learning_rate=0.01, recall=0.5)
    b = finished_run(user, dataset, learning_rate=0.001, recall=0.5, happy=0.8, sad=0.3)
    page.goto(f"{live_asgi.url}/runs/compare/?ids={a.pk},{b.pk}")
    wait_for_chart(page, "#compare-difference")
    shot(page, "compare-results")

    lr = page.locator('#compare-metrics tr[data-field="learning_rate"]')
    momentum = page.locator('#compare-metrics tr[data-field="momentum"]')
    assert "diff" in lr.get_attribute("class") and lr.inner_text().split("\t")[1:] == ["0.01", "0.001"]
    assert "same" in momentum.get_attribute("class")
    assert page.inner_text("#differences-count") == "1 setting differs."
    assert "0.01" in page.inner_text('#compare-metrics tr[data-field="learning_rate"]')
    assert "happy: 25.1%" in page.inner_text('#compare-metrics tr[data-field="baseline"]')
    page.check("#only-differences")
    assert lr.is_visible() and not momentum.is_visible()
    assert page.locator('#compare-metrics tr[data-field="accuracy"]').is_visible()  # results always show
    page.uncheck("#only-differences")
    assert momentum.is_visible()

    # Curves: one colour per run, validation solid, training dashed.
    lines = figure(page, "#compare-accuracy")["data"]
    assert [t["name"] for t in lines] == [f"#{r.pk} {kind} accuracy" for r in (a, b) for kind in ("training", "validation")]
    assert [t["line"]["dash"] for t in lines] == ["dash", "solid", "dash", "solid"]
    assert lines[0]["line"]["color"] == lines[1]["line"]["color"] != lines[2]["line"]["color"]

    # Recall per class: one bar per run per class, the classes along the axis.
    recall = figure(page, "#compare-recall")
    assert [t["name"] for t in recall["data"]] == [f"#{a.pk} fast_resnet", f"#{b.pk} fast_resnet"]
    assert recall["data"][1]["y"][CLASSES.index("happy")] == pytest.approx(0.8)
    assert ticks(page, "#compare-recall", "x") == list(CLASSES)
    assert [t["marker"]["color"] for t in recall["data"]] == [lines[0]["line"]["color"], lines[2]["line"]["color"]]

    # B minus A: happy gains 0.30 on the diagonal (green), sad loses 0.20 (red), each with its value.
    diff = figure(page, "#compare-difference")
    trace = diff["data"][0]
    h, s = CLASSES.index("happy"), CLASSES.index("sad")
    assert trace["text"][h][h] == "+0.30" and trace["text"][s][s] == "-0.20" and trace["text"][0][0] == "0"
    assert trace["z"][h][h] > 0 > trace["z"][s][s]  # better is green, worse is red
    assert trace["z"][h][(h + 1) % 7] > 0  # fewer happy faces confused: better, though the value falls
    assert (axis_title(diff, "xaxis"), axis_title(diff, "yaxis")) == ("predicted class", "true class")
    assert f"B (#{b.pk} fast_resnet) minus A (#{a.pk} fast_resnet)" in page.inner_text("#difference-caption")


@pytest.mark.browser
def test_compare_picks_a_and_b_among_three_runs(live_asgi, user_page):
    page, user, dataset = user_page
    runs = [finished_run(user, dataset, learning_rate=lr, happy=h) for lr, h in ((0.1, 0.5), (0.01, 0.6), (0.001, 0.9))]
    page.goto(f"{live_asgi.url}/runs/compare/?ids={','.join(str(r.pk) for r in runs)}")
    wait_for_chart(page, "#compare-difference")
    h = CLASSES.index("happy")
    assert figure(page, "#compare-difference")["data"][0]["text"][h][h] == "+0.10"
    page.select_option("#difference-b", str(runs[2].pk))
    page.wait_for_function("(h) => document.querySelector('#compare-difference').data[0].text[h][h] === '+0.40'", arg=h)
    assert f"B (#{runs[2].pk}" in page.inner_text("#difference-caption")


@pytest.mark.browser
def test_a_run_below_its_baseline_is_said_so_and_make_active_asks_first(live_asgi, user_page):
    page, user, dataset = user_page
    good = finished_run(user, dataset, accuracy=0.693)
    active = version_of(good, "good-v1", 0.693)
    ActiveModelChoice.objects.create(user=user, model_version=active)
    weak = finished_run(user, dataset, accuracy=0.135)
    weak_version = version_of(weak, "weak-v1", 0.135)
    activations = []
    page.on("request", lambda r: activations.append(r.url) if r.url.endswith("/activate/") else None)

    page.goto(f"{live_asgi.url}/runs/{weak.pk}/")
    page.wait_for_selector("#evaluation:not([hidden])")
    assert page.inner_text("#accuracy-line") == "Accuracy 13.5% · always answering happy: 25.1% · active model: 69.3%"
    assert "worse than always answering happy" in page.inner_text("#baseline-warning")
    assert "Do not make it active" in page.inner_text("#baseline-warning")

    page.click("#make-active")
    dialog = page.locator("#activate-dialog")
    dialog.wait_for()
    shot(page, "make-active-dialog")
    text = dialog.inner_text()
    assert f"Make run {weak.pk} (fast_resnet, 13.5%) the active model?" in text
    assert "Right now your predictions come from good-v1 (69.3%)." in text
    assert "less than always answering happy (25.1%)" in text and "13.5% against 69.3%" in text
    assert page.locator("#activate-everyone").count() == 0  # rita is no staff
    assert page.evaluate("document.activeElement.id") == "activate-cancel"  # a warned choice: Cancel has the focus
    page.click("#activate-cancel")
    dialog.wait_for(state="detached")
    page.wait_for_timeout(200)
    assert activations == [] and ActiveModelChoice.objects.get(user=user).model_version_id == active.pk
    assert page.inner_text("#make-active") == "Make active"

    page.click("#make-active")
    page.click("#activate-me")
    page.wait_for_function("document.querySelector('#make-active').textContent === 'Active'")
    assert len(activations) == 1
    assert ActiveModelChoice.objects.get(user=user).model_version_id == weak_version.pk
    assert page.inner_text("#run-active-model") == "active model: this one"

    # The run list says the same in its own way, and so does the page of the good run.
    page.goto(f"{live_asgi.url}/runs/")
    assert page.locator(f'tr[data-run="{weak.pk}"] [data-below-baseline]').count() == 1
    assert page.locator(f'tr[data-run="{good.pk}"] [data-below-baseline]').count() == 0
    page.goto(f"{live_asgi.url}/runs/{good.pk}/")
    page.wait_for_selector("#evaluation:not([hidden])")
    assert page.is_hidden("#baseline-warning")


@pytest.mark.browser
def test_the_models_page_asks_before_switching_with_both_accuracies(live_asgi, user_page):
    page, user, dataset = user_page
    good = finished_run(user, dataset, accuracy=0.693)
    active = version_of(good, "good-v1", 0.693)
    ActiveModelChoice.objects.create(user=user, model_version=active)
    weak = finished_run(user, dataset, accuracy=0.135)
    weak_version = version_of(weak, "weak-v1", 0.135)

    page.goto(f"{live_asgi.url}/models/")
    row = f'tr[data-model="{weak_version.pk}"]'
    assert "13.5%" in page.inner_text(row) and page.locator(f"{row} [data-below-baseline]").count() == 1
    page.click(f"{row} button.activate")
    text = page.inner_text("#activate-dialog")
    assert f"Make run {weak.pk} (fast_resnet, 13.5%) the active model?" in text and "good-v1 (69.3%)" in text
    assert "always answering happy" in text
    page.click("#activate-cancel")
    page.wait_for_timeout(200)
    assert ActiveModelChoice.objects.get(user=user).model_version_id == active.pk
    page.click(f"{row} button.activate")
    page.click("#activate-me")
    page.wait_for_selector(f"{row} [data-active]")
    assert ActiveModelChoice.objects.get(user=user).model_version_id == weak_version.pk


@pytest.mark.browser
def test_staff_may_make_a_model_active_for_everyone(live_asgi, page):
    from django.contrib.auth import get_user_model as users

    signup(page, live_asgi.url, "stan")
    stan = users().objects.get(username="stan")
    stan.is_staff = True
    stan.save()
    run = finished_run(stan, make_ready_dataset(stan, per_class=4), accuracy=0.7)
    version = version_of(run, "stan-v1", 0.7)
    try:
        page.goto(f"{live_asgi.url}/runs/{run.pk}/")
        page.click("#make-active")
        page.click("#activate-everyone")
        page.wait_for_function("document.querySelector('#activate-outcome').textContent.includes('site default')")
        version.refresh_from_db()
        assert version.is_site_default and not ActiveModelChoice.objects.filter(user=stan).exists()
    finally:
        connections.close_all()


@pytest.mark.browser
def test_compare_is_reached_from_the_list_on_a_phone(live_asgi, browser_factory):
    context = browser_factory().new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    try:
        signup(page, live_asgi.url, "pia")
        user = get_user_model().objects.get(username="pia")
        dataset = make_ready_dataset(user, per_class=4)
        a, b = (finished_run(user, dataset, learning_rate=lr) for lr in (0.1, 0.01))
        page.goto(f"{live_asgi.url}/runs/")
        assert page.is_disabled("#compare-selected")
        page.check(f'input.compare-box[value="{a.pk}"]')
        page.check(f'input.compare-box[value="{b.pk}"]')
        page.click("#compare-selected")
        page.wait_for_url(f"**/runs/compare/?ids={b.pk},{a.pk}")
        wait_for_chart(page, "#compare-difference")
        shot(page, "compare-phone")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert page.locator('#compare-metrics tr[data-field="learning_rate"].diff').count() == 1
        for chart in ("#compare-accuracy", "#compare-recall", "#compare-difference"):
            box = page.locator(f"{chart} .main-svg").first.bounding_box()
            assert box["x"] >= 0 and box["x"] + box["width"] <= 390, chart
    finally:
        context.close()
        connections.close_all()
