import torch

from training_jobs.ml.augment import AugmentParams, augment_batch, mix_batch, random_erasing

OFF = AugmentParams(hflip=False, rotation_deg=0, shift=0, zoom=0, brightness=0, contrast=0, erasing_prob=0)


def batch(n=16):
    return torch.rand(n, 1, 48, 48, generator=torch.Generator().manual_seed(3))


def test_it_keeps_shape_dtype_and_range():
    params = AugmentParams(erasing_prob=0.5)
    out = augment_batch(batch(), params, torch.Generator().manual_seed(0))
    assert out.shape == (16, 1, 48, 48) and out.dtype == torch.float32
    assert out.min() >= 0 and out.max() <= 1


def test_the_same_seed_gives_the_same_batch_and_another_seed_does_not():
    params = AugmentParams(erasing_prob=0.5)
    a = augment_batch(batch(), params, torch.Generator().manual_seed(0))
    b = augment_batch(batch(), params, torch.Generator().manual_seed(0))
    c = augment_batch(batch(), params, torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_with_everything_off_the_batch_is_untouched():
    x = batch()
    assert torch.allclose(augment_batch(x, OFF, torch.Generator().manual_seed(0)), x, atol=1e-6)


def test_flip_only_mirrors_or_keeps_each_face():
    x = batch(32)
    out = augment_batch(x, AugmentParams(**{**OFF.__dict__, "hflip": True}), torch.Generator().manual_seed(0))
    mirrored = torch.tensor([torch.allclose(o, torch.flip(i, dims=[2]), atol=1e-5) for o, i in zip(out, x)])
    kept = torch.tensor([torch.allclose(o, i, atol=1e-5) for o, i in zip(out, x)])
    assert bool((mirrored | kept).all()) and 4 < int(mirrored.sum()) < 28


def test_a_shift_moves_the_content():
    x = torch.zeros(8, 1, 48, 48)
    x[:, :, 20:28, 20:28] = 1.0
    out = augment_batch(x, AugmentParams(**{**OFF.__dict__, "shift": 0.2}), torch.Generator().manual_seed(5))
    centres = [(o[0] > 0.5).nonzero().float().mean(0) for o in out]
    assert max(float((c - torch.tensor([23.5, 23.5])).abs().max()) for c in centres) > 2


def test_erasing_replaces_one_rectangle_per_chosen_face():
    x = torch.full((64, 1, 48, 48), 0.5)
    out = random_erasing(x, 0.5, torch.Generator().manual_seed(0))
    changed = (out != x).flatten(1).any(1)
    assert 15 < int(changed.sum()) < 49
    for face in out[changed]:
        rows, cols = (face[0] != 0.5).nonzero(as_tuple=True)
        area = (rows.max() - rows.min() + 1) * (cols.max() - cols.min() + 1)
        assert area <= 0.35 * 48 * 48


def test_mixup_mixes_targets_in_proportion():
    x = batch(8)
    y = torch.eye(7)[torch.arange(8) % 7]
    mixed_x, mixed_y = mix_batch(x, y, mixup_alpha=0.4, cutmix_alpha=0.0, generator=torch.Generator().manual_seed(2))
    assert mixed_x.shape == x.shape
    assert torch.allclose(mixed_y.sum(1), torch.ones(8))
    assert (mixed_y.max(1).values < 1).any()
