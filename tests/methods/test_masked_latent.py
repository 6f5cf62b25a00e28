"""Masked latent prediction: I-JEPA's multi-block masks, a context encoder that sees the
visible patches alone, a predictor that knows where the targets are but not what they hold,
and z inference that never raises the energy."""

import math

import pytest
import torch

from sslcli.augment.patch_masks import MIN_CONTEXT, multiblock_masks
from sslcli.engine.contract import Clock
from sslcli.methods.masked_latent import MaskedLatent
from sslcli.models.backbones import BackboneOptions, build_backbone
from sslcli.models.tokens import visible_tokens


def _vit(size: int = 32) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_backbone("vit-tiny", BackboneOptions(image_size=size, patch_size=4))


@pytest.mark.parametrize(("rows", "columns"), [(8, 8), (14, 14), (6, 10)])
def test_masks_have_four_rectangular_blocks_of_the_stated_scale_and_a_disjoint_context(
    rows: int, columns: int
) -> None:
    generator = torch.Generator().manual_seed(3)
    for _ in range(20):
        masks = multiblock_masks(6, rows, columns, generator)
        count, blocks, size = masks.targets.shape
        assert (count, blocks) == (6, 4)
        first = masks.targets[0, 0]
        height = int(first.div(columns, rounding_mode="floor").unique().numel())
        width = size // height
        assert height * width == size
        # each block a height x width rectangle; one size for the batch (I-JEPA's collate)
        for block in masks.targets.flatten(0, 1):
            block_rows, block_columns = block.div(columns, rounding_mode="floor"), block % columns
            assert int(block_rows.max() - block_rows.min()) + 1 == height
            assert int(block_columns.max() - block_columns.min()) + 1 == width
            assert block.unique().numel() == size
        # the scale and aspect are drawn, then rounded to whole rows and columns
        assert size <= 0.5 * rows * columns and 0.3 <= height / width <= 3.0
        for sample in range(count):
            context = masks.context[sample]
            assert context.numel() >= MIN_CONTEXT
            assert torch.equal(context, context.sort().values) and context.unique().numel() == len(
                context
            )
            assert not set(context.tolist()) & set(masks.targets[sample].flatten().tolist())


def test_target_blocks_cover_15_to_20_percent_of_a_large_grid_on_average() -> None:
    generator = torch.Generator().manual_seed(0)
    shares = []
    for _ in range(200):
        masks = multiblock_masks(1, 14, 14, generator)
        shares.append(masks.targets.shape[2] / 196)
    mean = sum(shares) / len(shares)
    assert 0.14 <= mean <= 0.21, mean  # rounding to whole patches moves it a little
    assert min(shares) >= 0.1 and max(shares) <= 0.26


def test_masks_depend_on_the_generator_alone() -> None:
    one = multiblock_masks(8, 8, 8, torch.Generator().manual_seed(5))
    two = multiblock_masks(8, 8, 8, torch.Generator().manual_seed(5))
    assert torch.equal(one.context, two.context) and torch.equal(one.targets, two.targets)


def test_visible_tokens_see_nothing_of_the_hidden_patches() -> None:
    vit = _vit().eval()
    images = torch.randn(2, 3, 32, 32)
    everything = torch.arange(64).expand(2, -1)
    with torch.no_grad():
        torch.testing.assert_close(
            visible_tokens(vit, images, everything), vit.forward_features(images)
        )
        keep = torch.tensor([[0, 1, 2, 9, 10, 11], [5, 6, 7, 40, 41, 63]])
        before = visible_tokens(vit, images, keep)
        changed = images.clone()
        changed[0, :, 16:, :] = 7.0  # rows 4-7 of patches: none kept for image 0
        changed[1, :, 8:16, :] = -3.0  # patch rows 2-3: none kept for image 1
        torch.testing.assert_close(visible_tokens(vit, changed, keep), before)
        # and a kept patch does matter
        changed[0, :, :4, :4] = 5.0
        assert not torch.allclose(visible_tokens(vit, changed, keep)[0], before[0])


def _method(**options: object) -> MaskedLatent:
    method = MaskedLatent(_vit(), **options)
    method.begin_step(Clock(0, 10, 5))
    return method


def test_the_predictor_sees_where_the_targets_are_not_what_they_hold() -> None:
    method = _method().eval()
    images = torch.randn(4, 3, 32, 32)
    masks = method.masks(4, 8, 8, images.device)
    z = torch.randn(4, 16) * 0.1
    with torch.no_grad():
        prediction = method.predictor(method.context(images, masks), masks, z)
        hidden = images.clone()
        for sample in range(4):
            for patch in masks.targets[sample].flatten().unique().tolist():
                if patch not in masks.context[sample].tolist():
                    row, column = divmod(patch, 8)
                    hidden[sample, :, 4 * row : 4 * row + 4, 4 * column : 4 * column + 4] = 9.0
        again = method.predictor(method.context(hidden, masks), masks, z)
    torch.testing.assert_close(again, prediction)


def test_inferring_z_never_raises_the_energy_and_lowers_it_for_some_images() -> None:
    method = _method(z_steps=10, z_lr=5.0, z_weight=0.01)
    images = torch.randn(6, 3, 32, 32)
    masks = method.masks(6, 8, 8, images.device)
    targets = method.targets(images)
    context = method.context(images, masks).detach()
    inferred = method.search.minimise(
        lambda z: method.energy(context, masks, targets, z), 6, images.device
    )
    assert torch.all(inferred.free_energy <= inferred.energy_at_zero + 1e-7)
    assert torch.any(inferred.free_energy < inferred.energy_at_zero - 1e-6)
    with torch.no_grad():
        at_best = method.energy(context, masks, targets, inferred.z)
    regulariser = 0.01 * 0.5 * inferred.z.pow(2).sum(dim=1)
    torch.testing.assert_close(at_best + regulariser, inferred.free_energy)


def test_the_loss_is_the_z_dropout_mixture_of_the_energies_and_without_z_is_i_jepas() -> None:
    images = torch.randn(4, 3, 32, 32)
    for latent_dim in (16, 0):
        method = _method(latent_dim=latent_dim, z_dropout=0.25)
        output = method([images])
        masks = method.masks(4, 8, 8, images.device)
        targets = method.targets(images)
        context = method.context(images, masks)
        z = torch.zeros(4, latent_dim)
        unaided = method.energy(context, masks, targets, z)
        # targets: the EMA encoder's patch tokens, layer-normalised; E: their mean squared error
        wanted = torch.nn.functional.layer_norm(
            method.target_backbone.forward_features(images)[:, 1:], (192,)
        )
        count = len(masks.targets)
        chosen = torch.stack([wanted[i, masks.targets[i].flatten()] for i in range(count)])
        direct = (method.predictor(context, masks, z).reshape(count, -1, 192) - chosen).pow(2)
        torch.testing.assert_close(unaided, direct.mean(dim=(1, 2)))
        if latent_dim == 0:
            assert output.metrics["z_gap"] == 0
            torch.testing.assert_close(output.loss, unaided.mean())
        else:
            predicted = output.metrics["energy"]
            expected = 0.75 * predicted + 0.25 * unaided.mean()
            torch.testing.assert_close(output.loss, expected, rtol=1e-5, atol=1e-6)
    assert math.isfinite(output.loss.item())


def test_the_target_encoder_follows_the_context_encoder_and_gets_no_gradient() -> None:
    method = _method()
    output = method([torch.randn(4, 3, 32, 32)])
    output.loss.backward()
    assert all(p.grad is None for p in method.target_backbone.parameters())
    assert method.backbone.patch_embed.proj.weight.grad is not None
    before = method.target_backbone.patch_embed.proj.weight.clone()
    with torch.no_grad():
        method.backbone.patch_embed.proj.weight.add_(1.0)
    method.after_step(Clock(0, 10, 5))
    moved = method.target_backbone.patch_embed.proj.weight - before
    torch.testing.assert_close(moved, torch.full_like(moved, 1 - 0.996), rtol=1e-3, atol=1e-6)


def test_held_out_energies_use_fixed_masks_and_leave_the_model_as_it_was() -> None:
    method = _method(z_steps=5)
    images = torch.randn(5, 3, 32, 32)
    weights = {name: value.clone() for name, value in method.state_dict().items()}
    first = method.held_out(images)
    method.begin_step(Clock(7, 10, 5))  # another step's masks: the held-out ones stay
    assert method.held_out(images) == first
    assert method.training
    assert (
        0
        <= first["held_out_z_gap"]
        == pytest.approx(first["held_out_energy_at_zero"] - first["held_out_free_energy"])
    )
    for name, value in method.state_dict().items():
        assert torch.equal(value, weights[name]), name
