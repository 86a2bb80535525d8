"""A run's notes and tags: PATCH /api/runs/{id}/ with clear refusals, and the list filtered by a tag."""
import pytest
from django.test import Client

from tests.test_api_shapes import check
from tests.training_web.conftest import make_ready_dataset
from tests.training_web.test_charts import finished_run, occlusion_item

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def openapi():
    from drf_spectacular.generators import SchemaGenerator

    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.fixture
def run(alice):
    return finished_run(alice, make_ready_dataset(alice, per_class=2), [2.0], [occlusion_item("happy", 0.01)])


def patch(api, run, body):
    return api.patch(f"/api/runs/{run.pk}/", body, format="json")


def test_the_owner_sets_notes_and_tags_and_gets_the_run_back(alice_api, run, openapi):
    response = patch(alice_api, run, {"notes": "lr too high?\nTry 0.01 next.", "tags": [" baseline ", "cpu", "baseline"]})
    assert response.status_code == 200
    body = check(openapi, response, "/api/runs/{id}/", "patch")
    assert body["notes"] == "lr too high?\nTry 0.01 next." and body["tags"] == ["baseline", "cpu"]
    run.refresh_from_db()
    assert run.tags == ["baseline", "cpu"]
    # Fields left out stay as they are.
    assert patch(alice_api, run, {"tags": ["cpu"]}).json()["notes"] == "lr too high?\nTry 0.01 next."
    assert alice_api.get(f"/api/runs/{run.pk}/").json()["tags"] == ["cpu"]


@pytest.mark.parametrize("body, field, message", [
    ({"notes": "x" * 5001}, "notes", "notes are at most 5,000 characters; these have 5,001"),
    ({"tags": ["ok", "x" * 33]}, "tags", "a tag is 1-32 characters; " + "x" * 32 + "... has 33"),
    ({"tags": ["  "]}, "tags", "a tag is 1-32 characters; one is empty"),
    ({"tags": [f"t{i}" for i in range(21)]}, "tags", "a run has at most 20 tags; these are 21"),
    ({"tags": "baseline"}, "tags", 'Expected a list of items but got type "str".'),
])
def test_bad_notes_or_tags_are_refused_with_the_limit_and_nothing_is_saved(alice_api, run, openapi, body, field, message):
    response = patch(alice_api, run, {"notes": "kept", **body} if field == "tags" else body)
    assert response.status_code == 400
    error = check(openapi, response, "/api/runs/{id}/", "patch")
    assert error["code"] == "invalid" and error["fields"] == {field: [message]}
    run.refresh_from_db()
    assert run.notes == "" and run.tags == []


def test_another_user_cannot_annotate_the_run(bob_api, run):
    assert patch(bob_api, run, {"notes": "mine now"}).status_code == 404
    run.refresh_from_db()
    assert run.notes == ""


def test_the_list_filters_by_a_tag_in_the_api_and_on_the_page(alice, alice_api, run):
    other = finished_run(alice, run.dataset, [2.0], [occlusion_item("sad", 0.01)])
    patch(alice_api, run, {"tags": ["baseline"]})
    patch(alice_api, other, {"tags": ["augmented"]})
    assert [r["id"] for r in alice_api.get("/api/runs/?tag=baseline").json()] == [run.pk]
    assert {r["id"] for r in alice_api.get("/api/runs/").json()} == {run.pk, other.pk}
    assert alice_api.get("/api/runs/?tag=nothing").json() == []

    client = Client()
    client.force_login(alice)
    html = client.get("/runs/?tag=baseline").content.decode()
    assert f'data-run="{run.pk}"' in html and f'data-run="{other.pk}"' not in html
    assert 'id="tag-filter"' in html and '<a class="tag" href="?tag=baseline">baseline</a>' in html
