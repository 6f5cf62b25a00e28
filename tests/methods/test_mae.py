"""The masked autoencoder (MAE, the pixel baseline of masked prediction): its random masks,
patches in the ViT's own order, a decoder that never sees the hidden pixels, and the loss
against a direct computation of MAE's ``forward_loss`` with ``norm_pix_loss``."""

import pytest
import torch

from sslcli.augment.patch_masks import random_masks
from sslcli.engine.contract import Clock
from sslcli.methods.mae import MaskedAutoencoder, patchify
from sslcli.models.backbones import BackboneOptions, build_backbone


def _method(**options: object) -> MaskedAutoencoder:
    torch.manual_seed(0)
    vit = build_backbone("vit-tiny", BackboneOptions(image_size=32, patch_size=4))
    method = MaskedAutoencoder(vit, **options)
    method.begin_step(Clock(0, 10, 5))
    return method


@pytest.mark.parametrize(
    ("patches", "ratio", "seen"), [(64, 0.75, 16), (196, 0.75, 49), (10, 0.9, 1)]
)
def test_random_masks_hide_the_stated_share_a_different_one_per_image(
    patches: int, ratio: float, seen: int
) -> None:
    masks = random_masks(32, patches, torch.Generator().manual_seed(1), ratio)
    assert masks.context.shape == (32, seen)
    assert masks.targets.shape == (32, 1, patches - seen)
    for context, hidden in zip(masks.context, masks.targets[:, 0], strict=True):
        assert torch.equal(context, context.sort().values)
        assert torch.equal(hidden, hidden.sort().values)
        # every patch either seen or hidden, none both
        assert torch.equal(torch.cat([context, hidden]).sort().values, torch.arange(patches))
    assert len({tuple(c.tolist()) for c in masks.context}) == min(32, patches)
    # each patch as likely to be seen as any other: in about seen / patches of 400 images
    # (binomial: 5 standard deviations are at most 0.11)
    many = random_masks(400, patches, torch.Generator().manual_seed(2), ratio).context
    share = torch.bincount(many.flatten(), minlength=patches).float() / 400
    assert (share - seen / patches).abs().max().item() < 0.11


def test_patchify_cuts_the_patches_in_the_order_the_vit_embeds_them() -> None:
    images = torch.randn(2, 3, 32, 32)
    patches = patchify(images, 4)
    assert patches.shape == (2, 64, 48)
    for index in (0, 7, 8, 45, 63):
        row, column = divmod(index, 8)
        patch = images[:, :, 4 * row : 4 * row + 4, 4 * column : 4 * column + 4]
        torch.testing.assert_close(patches[:, index], patch.permute(0, 2, 3, 1).reshape(2, 48))
    # the ViT's patch embedding is a linear map of exactly these pixels
    vit = _method().backbone
    weight = vit.patch_embed.proj.weight.permute(0, 2, 3, 1).reshape(192, 48)
    embedded = vit.patch_embed(images).reshape(2, 64, 192)
    direct = patches @ weight.T + vit.patch_embed.proj.bias
    torch.testing.assert_close(embedded, direct, rtol=1e-4, atol=1e-5)


def test_the_decoder_sees_where_the_hidden_patches_are_not_what_they_hold() -> None:
    method = _method().eval()
    images = torch.randn(3, 3, 32, 32)
    masks = method.masks(3, 8, 8, images.device)
    with torch.no_grad():
        before = method.decoder(method.context(images, masks), masks)
        changed = images.clone()
        for sample in range(3):
            for patch in masks.targets[sample, 0].tolist():
                row, column = divmod(patch, 8)
                changed[sample, :, 4 * row : 4 * row + 4, 4 * column : 4 * column + 4] = 9.0
        after = method.decoder(method.context(changed, masks), masks)
    torch.testing.assert_close(after, before)
    # ...while the loss does see them: they are its targets
    assert method.pixel_error(changed, masks)[0].ne(method.pixel_error(images, masks)[0]).all()


def test_the_loss_is_maes_normalised_pixel_error_on_the_hidden_patches() -> None:
    method = _method(mask_ratio=0.5)
    images = torch.randn(4, 3, 32, 32)
    output = method([images])
    masks = method.masks(4, 8, 8, images.device)
    assert masks.context.shape == (4, 32)
    predicted = method.decoder(method.context(images, masks), masks)[:, 0]
    # models_mae.py, forward_loss with norm_pix_loss: target = (x - mean) / (var + 1e-6)**.5
    # per patch (var unbiased, as torch's .var); loss = ((pred - target)**2).mean(-1), then
    # (loss * mask).sum() / mask.sum() over the hidden patches
    target = patchify(images, 4)
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.0e-6) ** 0.5
    hidden = torch.zeros(4, 64)
    full = torch.zeros(4, 64, 48)
    for sample in range(4):
        hidden[sample, masks.targets[sample, 0]] = 1
        full[sample, masks.targets[sample, 0]] = predicted[sample]
    per_patch = ((full - target) ** 2).mean(dim=-1)
    direct = (per_patch * hidden).sum() / hidden.sum()
    torch.testing.assert_close(output.loss, direct, rtol=1e-5, atol=1e-6)
    output.loss.backward()
    assert method.backbone.patch_embed.proj.weight.grad is not None
    assert method.decoder.out.weight.grad is not None
    assert output.embeddings.shape == (4, 192)


def test_held_out_error_uses_fixed_masks_and_leaves_the_model_as_it_was() -> None:
    method = _method()
    images = torch.randn(5, 3, 32, 32)
    weights = {name: value.clone() for name, value in method.state_dict().items()}
    first = method.held_out(images)
    method.begin_step(Clock(9, 10, 5))
    assert method.held_out(images) == first and first["held_out_pixel_error"] > 0
    assert method.training
    for name, value in method.state_dict().items():
        assert torch.equal(value, weights[name]), name
