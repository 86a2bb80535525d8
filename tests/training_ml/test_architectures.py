import pytest
import torch

from training_jobs.ml.architectures import (
    ARCHITECTURES, build_model, count_parameters, load_init_checkpoint, set_backbone_trainable,
)

EXPECTED_PARAMETERS = {
    "adapted_residual": 9_766_391,  # Bah & Xue 2022, Table 1 (trainable)
    "basic_cnn": 4_730_423,  # the same without the three residual blocks
    "light_residual": 551_175,  # paper: 552,455; ours within 0.3%
    "resnet34": 21_279_431,
    "resnet50": 23_513_543,
    "hybrid_resnet34_50": 44_792_967,
    "compact_resnet": 1_421_655,  # our own design
    "fast_resnet": 1_236_903,  # our own design, for serving
}


def test_the_registry_holds_every_paper_architecture():
    assert set(EXPECTED_PARAMETERS) <= set(ARCHITECTURES)
    for spec in ARCHITECTURES.values():
        assert spec.description and "\n" not in spec.description


@pytest.mark.parametrize("name", sorted(EXPECTED_PARAMETERS))
def test_it_has_the_exact_parameter_count_and_maps_faces_to_seven_logits(name):
    model = build_model(name)
    assert count_parameters(model) == EXPECTED_PARAMETERS[name]
    model.eval()
    with torch.no_grad():
        logits = model(torch.rand(2, 1, 48, 48))
    assert logits.shape == (2, 7) and logits.dtype == torch.float32
    assert torch.isfinite(logits).all()


def test_adapted_residual_matches_the_papers_non_trainable_count_too():
    # Keras counts BN moving mean and variance as 6,720 non-trainable parameters.
    model = build_model("adapted_residual")
    running = sum(b.numel() for name, b in model.named_buffers() if name.endswith(("running_mean", "running_var")))
    assert running == 6_720


def test_light_residual_stays_within_five_percent_of_the_paper():
    assert abs(count_parameters(build_model("light_residual")) - 552_455) / 552_455 < 0.05


def test_paper_blocks_use_he_init_and_zero_bias():
    model = build_model("adapted_residual")
    first = model.features[0][0]
    assert torch.count_nonzero(first.bias) == 0
    # He-normal: std = sqrt(2 / fan_in), fan_in = 1 * 5 * 5.
    assert first.weight.std().item() == pytest.approx((2 / 25) ** 0.5, rel=0.25)


def test_an_unknown_name_lists_the_choices():
    with pytest.raises(ValueError, match="light_residual"):
        build_model("vgg99")


def test_freezing_the_backbone_leaves_only_the_classifier_trainable():
    model = build_model("light_residual")
    set_backbone_trainable(model, False)
    head = sum(p.numel() for p in model.classifier.parameters())
    assert count_parameters(model) == head == 128 * 512 + 512 + 512 * 7 + 7
    set_backbone_trainable(model, True)
    assert count_parameters(model) == 551_175


def test_it_fine_tunes_from_a_checkpoint_whose_head_and_first_conv_differ(tmp_path):
    source = build_model("resnet34")
    state = source.state_dict()
    # An ImageNet-style first conv (3 input channels) and a 10-class head.
    state["features.stem.0.weight"] = torch.randn(64, 3, 3, 3)
    state["classifier.1.weight"] = torch.randn(10, 512)
    state["classifier.1.bias"] = torch.randn(10)
    path = tmp_path / "imagenet_like.pt"
    torch.save({"state_dict": {"module." + k: v for k, v in state.items()}}, path)

    target = build_model("resnet34")
    report = load_init_checkpoint(target, path)

    assert report.adapted == ["features.stem.0.weight"]
    assert set(report.skipped) == {"classifier.1.weight", "classifier.1.bias"}
    assert torch.allclose(target.features.stem[0].weight, state["features.stem.0.weight"].sum(1, keepdim=True))
    assert torch.equal(target.features.stages[3][2].conv2.weight, state["features.stages.3.2.conv2.weight"])


def test_a_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"model": build_model("light_residual").state_dict()}, path)
    with pytest.raises(ValueError, match="another"):
        load_init_checkpoint(build_model("resnet50"), path)
