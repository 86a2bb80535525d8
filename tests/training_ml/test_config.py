import pytest

from training_jobs.ml.config import ConfigError, TrainConfig


def test_defaults_follow_the_2022_recipe():
    config = TrainConfig()
    assert (config.architecture, config.optimizer, config.learning_rate, config.batch_size, config.epochs) == (
        "adapted_residual", "nadam", 1e-3, 64, 100)
    assert config.class_weighting and config.scheduler == "plateau" and config.min_lr == 1e-7
    assert config.early_stopping_patience == 30 and config.validation_fraction == 0.1


def test_it_coerces_form_strings():
    config = TrainConfig.from_dict({"epochs": "5", "learning_rate": "0.01", "hflip": "false", "optimizer": "sgd"})
    assert config.epochs == 5 and config.learning_rate == 0.01 and config.hflip is False


def test_errors_name_every_bad_field_and_the_valid_choices():
    with pytest.raises(ConfigError) as caught:
        TrainConfig.from_dict({"optimizer": "lion", "architecture": "vgg", "batch_size": 0, "epochs": 2.5,
                               "colour": "red"})
    errors = caught.value.errors
    assert "sgd, adam, adamw, rmsprop, nadam" in errors["optimizer"]
    assert "adapted_residual" in errors["architecture"] and "light_residual" in errors["architecture"]
    assert "between 1 and 4096" in errors["batch_size"]
    assert "whole number" in errors["epochs"]
    assert "valid fields are" in errors["colour"]


def test_the_schema_describes_every_field_once():
    schema = TrainConfig.fields_schema()
    names = [row["name"] for row in schema]
    assert names == TrainConfig.field_names()
    by_name = {row["name"]: row for row in schema}
    assert by_name["optimizer"]["choices"] == ["sgd", "adam", "adamw", "rmsprop", "nadam"]
    assert "hybrid_resnet34_50" in by_name["architecture"]["choices"]
    assert by_name["learning_rate"]["type"] == "float" and by_name["learning_rate"]["min"] > 0
    assert all(row["help"] for row in schema)


def test_it_round_trips_through_a_dict():
    config = TrainConfig.from_dict({"optimizer": "adamw", "mixup_alpha": 0.2})
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_freezing_must_leave_epochs_to_train_the_backbone():
    with pytest.raises(ConfigError, match="freeze_backbone_epochs"):
        TrainConfig.from_dict({"epochs": 3, "freeze_backbone_epochs": 3})
