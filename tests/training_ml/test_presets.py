"""Presets are complete, valid recipes, and every recipe field speaks to people."""
import pytest

from training_jobs.ml import presets
from training_jobs.ml.config import ConfigError, TrainConfig

NAMES = ("quick", "ferweb_default", "bah_xue_2022", "mutaliyev_2026", "auliana_2024_sgd", "auliana_2024_adam",
         "auliana_2024_rmsprop")
# Pieces of field names that mean nothing to someone who has not read the code.
RAW_WORDS = {"tta", "ema", "bf16", "hflip", "prob", "alpha", "deg", "lr", "init", "distill", "num"}


def test_every_field_has_a_label_and_a_help_line_for_people():
    for row in TrainConfig.fields_schema():
        assert row["label"] and row["label"][0].isupper(), row["name"]
        assert "_" not in row["label"], row["name"]
        assert not set(row["label"].lower().split()) & RAW_WORDS, row["label"]
        assert len(row["help"].split()) >= 6 and row["help"].endswith("."), row["name"]
        assert isinstance(row["basic"], bool)
    labels = [row["label"] for row in TrainConfig.fields_schema()]
    assert len(set(labels)) == len(labels)


def test_the_basic_fields_are_the_few_a_newcomer_sets():
    basic = [row["name"] for row in TrainConfig.fields_schema() if row["basic"]]
    assert basic == ["architecture", "optimizer", "learning_rate", "batch_size", "epochs", "class_weighting"]


def test_the_help_says_what_the_papers_used():
    help_of = {row["name"]: row["help"] for row in TrainConfig.fields_schema()}
    assert "Nadam" in help_of["optimizer"] and "RMSprop" in help_of["optimizer"]
    assert "Bah & Xue 2022" in help_of["epochs"] and "Bah & Xue 2022: 30" in help_of["early_stopping_patience"]


def test_choices_have_names_for_people():
    rows = {row["name"]: row for row in TrainConfig.fields_schema()}
    assert rows["optimizer"]["choice_labels"]["sgd"] == "SGD with momentum"
    assert set(rows["scheduler"]["choice_labels"]) == set(rows["scheduler"]["choices"])
    assert rows["architecture"]["choice_labels"] is None


def test_the_presets_are_the_agreed_ones():
    assert presets.NAMES == NAMES
    for preset in presets.PRESETS.values():
        assert preset.title and preset.description and preset.source


@pytest.mark.parametrize("name", NAMES)
def test_every_preset_is_a_complete_valid_recipe(name):
    recipe = presets.apply_preset(name)
    assert list(recipe) == TrainConfig.field_names()
    assert TrainConfig.from_dict(recipe).to_dict() == recipe
    assert set(presets.PRESETS[name].settings) <= set(TrainConfig.field_names())


def test_quick_is_the_short_cpu_recipe():
    recipe = presets.apply_preset("quick")
    expected = {"architecture": "fast_resnet", "optimizer": "adamw", "learning_rate": 0.003,
                "batch_size": 128, "epochs": 5, "weight_decay": 0.05, "class_weighting": False,
                "label_smoothing": 0.1, "scheduler": "onecycle", "early_stopping_patience": 0, "bf16": True,
                "rotation_deg": 5.0, "shift": 0.05, "zoom": 0.05, "occlusion_per_class": 1}
    assert {key: recipe[key] for key in expected} == expected


def test_the_paper_presets_follow_their_papers():
    bah_xue = presets.apply_preset("bah_xue_2022")
    assert (bah_xue["architecture"], bah_xue["optimizer"], bah_xue["learning_rate"], bah_xue["batch_size"],
            bah_xue["epochs"], bah_xue["class_weighting"], bah_xue["min_lr"],
            bah_xue["early_stopping_patience"]) == ("adapted_residual", "nadam", 0.001, 64, 100, True, 1e-7, 30)
    assert presets.apply_preset("mutaliyev_2026")["architecture"] == "light_residual"
    assert "no optimizer" in presets.PRESETS["mutaliyev_2026"].description
    optimizers = {presets.apply_preset(f"auliana_2024_{o}")["optimizer"] for o in ("sgd", "adam", "rmsprop")}
    assert optimizers == {"sgd", "adam", "rmsprop"}
    default = presets.apply_preset("ferweb_default")
    assert (default["epochs"], default["erasing_prob"], default["tta_flip"], default["teacher_checkpoint"]) == (
        90, 0.25, True, "")


def test_overrides_go_on_top_and_a_preset_leaves_nothing_behind():
    recipe = presets.apply_preset("quick", {"epochs": 2, "optimizer": "adam"})
    assert (recipe["epochs"], recipe["optimizer"], recipe["architecture"]) == (2, "adam", "fast_resnet")
    # Fields a preset does not set take their defaults, whatever came before.
    assert presets.apply_preset("bah_xue_2022")["erasing_prob"] == TrainConfig().erasing_prob
    assert presets.apply_preset("quick")["epochs"] == 5


def test_an_unknown_preset_names_the_valid_ones():
    with pytest.raises(ConfigError) as caught:
        presets.apply_preset("fastest")
    assert "fastest" in caught.value.errors["preset"]
    assert all(name in caught.value.errors["preset"] for name in NAMES)


def test_the_form_opens_on_quick_without_a_gpu():
    assert presets.default_for("cpu") == "quick" and presets.default_for("cuda") == "ferweb_default"
