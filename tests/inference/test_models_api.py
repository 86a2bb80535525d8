"""The model registry's API: versions, the active choice, the site default and the shipped model."""
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from inference.models import ActiveModelChoice, ModelVersion
from inference.selectors import active_model_for, shipped_model
from tests.inference.conftest import make_version


@pytest.mark.django_db
class TestModels:
    def test_the_shipped_model_serves_until_one_is_chosen(self, alice):
        active = active_model_for(alice)
        assert active.version == shipped_model().version and active.model_version_id is None
        assert active.version.startswith("default-")  # named by the shipped card, as predictions report it
        assert active.path == Path(settings.FERWEB_DEFAULT_MODEL)
        assert active_model_for(AnonymousUser()).version == shipped_model().version

    def test_a_user_activates_their_own_model(self, alice, bob, alice_api, bob_api):
        mine = make_version(alice, "alice-v1")
        assert bob_api.post(f"/api/models/{mine.pk}/activate/").status_code == 404
        response = alice_api.post(f"/api/models/{mine.pk}/activate/", {}, format="json")
        assert response.status_code == 200 and response.json()["is_active"] is True
        assert active_model_for(alice).model_version_id == mine.pk
        assert active_model_for(bob).version == shipped_model().version
        listed = alice_api.get("/api/models/").json()
        assert [(m["id"], m["is_active"]) for m in listed] == [(mine.pk, True)]
        assert bob_api.get("/api/models/").json() == []

    def test_only_staff_set_the_site_default(self, alice, bob, carol, alice_api, carol_api):
        version = make_version(carol, "site")
        mine = make_version(alice, "alice-v1")
        refused = alice_api.post(f"/api/models/{mine.pk}/activate/", {"site_default": True}, format="json")
        assert refused.status_code == 403 and "only staff" in refused.json()["fields"]["site_default"][0]
        ok = carol_api.post(f"/api/models/{version.pk}/activate/", {"site_default": True}, format="json")
        assert ok.status_code == 200
        assert active_model_for(bob).model_version_id == version.pk
        # A user's own choice wins over the site default.
        ActiveModelChoice.objects.create(user=alice, model_version=mine)
        assert active_model_for(alice).model_version_id == mine.pk

    def test_active_model_is_one_query(self, alice, django_assert_num_queries):
        make_version(alice, "v", is_site_default=True)
        with django_assert_num_queries(1):
            assert active_model_for(alice).version == "v"

    def test_onnx_downloads(self, alice, alice_api, bob_api, settings, tmp_path):
        settings.FERWEB_DEFAULT_MODEL = tmp_path / "default.onnx"
        settings.FERWEB_DEFAULT_MODEL.write_bytes(b"the shipped model")
        mine = make_version(alice, "alice-v1")
        response = alice_api.get(f"/api/models/{mine.pk}/onnx/")
        assert response.status_code == 200 and b"".join(response.streaming_content) == b"onnx bytes of alice-v1"
        assert bob_api.get(f"/api/models/{mine.pk}/onnx/").status_code == 404
        default = bob_api.get("/api/models/active/onnx/")
        assert default.status_code == 200
        assert b"".join(default.streaming_content) == b"the shipped model"
        alice_api.post(f"/api/models/{mine.pk}/activate/")
        active = alice_api.get("/api/models/active/onnx/")
        assert b"".join(active.streaming_content) == b"onnx bytes of alice-v1"

    def test_the_active_alias_resolves_only_to_versions_the_user_may_see(self, alice, bob, carol, alice_api, bob_api,
                                                                         carol_api, settings, tmp_path):
        settings.FERWEB_DEFAULT_MODEL = tmp_path / "default.onnx"
        settings.FERWEB_DEFAULT_MODEL.write_bytes(b"the shipped model")

        def active_onnx(client):
            response = client.get("/api/models/active/onnx/")
            assert response.status_code == 200
            return b"".join(response.streaming_content)

        site = make_version(carol, "site", is_site_default=True)
        assert alice_api.post(f"/api/models/{site.pk}/activate/", {}, format="json").status_code == 200
        assert active_onnx(alice_api) == b"onnx bytes of site"
        # Staff unset the site default: alice may no longer see carol's version, so it no longer serves her.
        carol_api.post("/api/models/default/activate/", {"site_default": True}, format="json")
        assert alice_api.get(f"/api/models/{site.pk}/").status_code == 404
        assert active_onnx(alice_api) == b"the shipped model"
        assert alice_api.get("/api/models/active/").json()["shipped"] is True
        assert active_model_for(alice).model_version_id is None
        # A new site default serves her until she chooses again.
        newer = make_version(carol, "site-2")
        carol_api.post(f"/api/models/{newer.pk}/activate/", {"site_default": True}, format="json")
        assert active_onnx(alice_api) == b"onnx bytes of site-2"
        # A choice of someone else's version (made outside the API) is ignored; staff see every version.
        alices = make_version(alice, "alice-v1")
        ActiveModelChoice.objects.create(user=bob, model_version=alices)
        assert active_onnx(bob_api) == b"onnx bytes of site-2"
        assert active_model_for(bob).model_version_id == newer.pk
        ActiveModelChoice.objects.update_or_create(user=carol, defaults={"model_version": alices})
        assert active_onnx(carol_api) == b"onnx bytes of alice-v1"


def shipped_card() -> dict:
    import json

    return json.loads(Path(settings.FERWEB_DEFAULT_MODEL).with_suffix(".json").read_text())


@pytest.mark.django_db
class TestShippedModel:
    def test_it_is_described_by_its_model_card(self, alice_api):
        card = shipped_card()
        shipped = alice_api.get("/api/models/default/").json()
        assert shipped["id"] is None and shipped["shipped"] is True and shipped["available"] is True
        assert (shipped["version"], shipped["architecture"]) == (card["version"], card["architecture"])
        assert shipped["param_count"] == card["parameters"]
        for name in ("accuracy", "macro_f1", "macro_auc"):
            assert shipped["metrics"][name] == card["metrics_summary"][name]
        assert shipped["is_active"] is True and shipped["is_site_default"] is True
        assert shipped["onnx_url"] == "/api/models/default/onnx/"
        # `active` names the same model while it serves.
        assert alice_api.get("/api/models/active/").json() == shipped

    def test_a_user_returns_to_the_shipped_model(self, alice, bob, alice_api):
        mine = make_version(alice, "alice-v1")
        bobs = make_version(bob, "bob-v1")
        ActiveModelChoice.objects.create(user=bob, model_version=bobs)
        alice_api.post(f"/api/models/{mine.pk}/activate/", {}, format="json")
        assert alice_api.get("/api/models/default/").json()["is_active"] is False

        response = alice_api.post("/api/models/default/activate/", {}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["is_active"] is True
        assert active_model_for(alice).version == shipped_model().version and active_model_for(alice).model_version_id is None
        assert [m["is_active"] for m in alice_api.get("/api/models/").json()] == [False]
        # Only the caller's choice goes; doing it twice changes nothing.
        assert active_model_for(bob).model_version_id == bobs.pk
        assert alice_api.post("/api/models/default/activate/").status_code == 200

    def test_a_user_picks_it_over_the_site_default(self, alice, bob, carol, alice_api):
        site = make_version(carol, "site", is_site_default=True)
        mine = make_version(alice, "alice-v1")
        ActiveModelChoice.objects.create(user=alice, model_version=mine)
        response = alice_api.post("/api/models/default/activate/", {}, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["is_active"] is True and response.json()["is_site_default"] is False
        assert active_model_for(alice).version == shipped_model().version and active_model_for(alice).model_version_id is None
        # Everyone else without a choice keeps the site default; a version chosen later wins again.
        assert active_model_for(bob).model_version_id == site.pk
        alice_api.post(f"/api/models/{mine.pk}/activate/", {}, format="json")
        assert active_model_for(alice).model_version_id == mine.pk

    def test_only_staff_unset_the_site_default(self, alice, bob, carol, alice_api, carol_api):
        site = make_version(carol, "site", is_site_default=True)
        carols = make_version(carol, "carol-v1")
        ActiveModelChoice.objects.create(user=carol, model_version=carols)
        refused = alice_api.post("/api/models/default/activate/", {"site_default": True}, format="json")
        assert refused.status_code == 403 and "only staff" in refused.json()["fields"]["site_default"][0]
        assert active_model_for(bob).model_version_id == site.pk

        ok = carol_api.post("/api/models/default/activate/", {"site_default": True}, format="json")
        assert ok.status_code == 200, ok.content
        assert ok.json()["is_site_default"] is True and ok.json()["is_active"] is False
        assert not ModelVersion.objects.filter(is_site_default=True).exists()
        assert active_model_for(bob).version == shipped_model().version
        # As with a version, setting the site default leaves the staff member's own choice alone.
        assert active_model_for(carol).model_version_id == carols.pk
        listed = {m["id"]: m["is_site_default"] for m in carol_api.get("/api/models/").json()}
        assert listed == {site.pk: False, carols.pk: False}

    def test_bad_input_gets_a_clear_answer(self, alice, bob, alice_api, bob_api, anon_api):
        mine = make_version(alice, "alice-v1")
        bad = alice_api.post("/api/models/default/activate/", {"site_default": "maybe"}, format="json")
        assert bad.status_code == 400 and "site_default" in bad.json()["fields"]
        unknown = alice_api.post("/api/models/99999/activate/", {}, format="json")
        assert unknown.status_code == 404 and unknown.json()["detail"] == "No such model version."
        not_yours = bob_api.post(f"/api/models/{mine.pk}/activate/", {}, format="json")
        assert not_yours.status_code == 404 and not_yours.json()["detail"] == "No such model version."
        assert alice_api.get("/api/models/shipped/").status_code == 404
        assert anon_api.post("/api/models/default/activate/").status_code in (401, 403)
        assert anon_api.get("/api/models/default/").status_code in (401, 403)

    def test_without_a_shipped_file_it_says_so(self, alice, alice_api, settings, tmp_path):
        mine = make_version(alice, "alice-v1")
        ActiveModelChoice.objects.create(user=alice, model_version=mine)
        settings.FERWEB_DEFAULT_MODEL = tmp_path / "missing.onnx"
        shipped = alice_api.get("/api/models/default/").json()
        assert shipped["available"] is False and shipped["version"] == "default" and shipped["metrics"] == {}
        refused = alice_api.post("/api/models/default/activate/", {}, format="json")
        assert refused.status_code == 404 and "ships no default model" in refused.json()["detail"]
        assert active_model_for(alice).model_version_id == mine.pk

    def test_its_onnx_downloads_while_a_version_is_active(self, alice, alice_api, settings, tmp_path):
        settings.FERWEB_DEFAULT_MODEL = tmp_path / "default.onnx"
        settings.FERWEB_DEFAULT_MODEL.write_bytes(b"the shipped model")
        mine = make_version(alice, "alice-v1")
        alice_api.post(f"/api/models/{mine.pk}/activate/")
        response = alice_api.get("/api/models/default/onnx/")
        assert response.status_code == 200 and b"".join(response.streaming_content) == b"the shipped model"
