"""iBOT on DINO: the masks, the masked forward, the patch loss against its formula."""

from __future__ import annotations

import pytest
import torch

from sslcli.augment.patch_masks import block_mask, global_batch_masks
from sslcli.engine.contract import Clock
from sslcli.methods.ibot import IBOT, masked_patch_loss
from sslcli.models.backbones import BackboneOptions, build_backbone
from sslcli.models.tokens import masked_tokens
from tests.methods.formulas import centred_cross_entropy


def test_half_of_the_crops_are_masked_with_shares_spread_over_the_range() -> None:
    masks = global_batch_masks(16, 14, 14, (0.1, 0.5), torch.Generator().manual_seed(0))
    counts = masks.flatten(1).sum(dim=1)
    assert masks.shape == (16, 14, 14) and int((counts > 0).sum()) == 8
    shares = sorted((counts[counts > 0] / 196).tolist())
    # the k-th masked crop aims at a share in the k-th eighth of [0.1, 0.5]; rectangles
    # that no longer fit stop a mask a little short of its aim
    for k, share in enumerate(shares):
        assert 0.1 + 0.05 * k - 0.05 <= share <= 0.1 + 0.05 * (k + 1) + 1e-9, (k, share)
    same = global_batch_masks(16, 14, 14, (0.1, 0.5), torch.Generator().manual_seed(0))
    assert torch.equal(masks, same)


def test_a_block_mask_is_made_of_rectangles_and_holds_about_its_patches() -> None:
    mask = block_mask(14, 14, 60, torch.Generator().manual_seed(3))
    assert 50 <= int(mask.sum()) <= 60
    rows, columns = mask.any(dim=1), mask.any(dim=0)
    assert 0 < int(rows.sum()) < 14 and 0 < int(columns.sum()) < 14  # not scattered patches


def test_masked_patches_take_the_mask_token_and_only_they_change_first() -> None:
    vit = build_backbone("vit-tiny", BackboneOptions(image_size=16, patch_size=4)).eval()
    images = torch.randn(2, 3, 16, 16)
    none = torch.zeros(2, 4, 4, dtype=torch.bool)
    token = torch.randn(192)
    with torch.no_grad():
        assert torch.allclose(
            masked_tokens(vit, images, none, token), vit.forward_features(images), atol=1e-6
        )
        # a masked patch sees nothing of its pixels: changing them changes no masked output
        masks = none.clone()
        masks[0, 1, 2] = True
        changed = images.clone()
        changed[0, :, 4:8, 8:12] += 5.0
        before = masked_tokens(vit, images, masks, token)
        after = masked_tokens(vit, changed, masks, token)
    assert torch.allclose(before, after, atol=1e-5)


def _direct_patch_loss(student, teacher, masks, center, tau_t, tau_s) -> float:
    """DINOv2's ibot_patch_loss.forward_masked, one patch at a time in float64: each crop's
    mean over its masked patches of -sum_k q log p, summed over the crops / crops."""
    total, row = 0.0, 0
    for crop in masks:
        patches = int(crop.sum())
        crop_total = sum(
            centred_cross_entropy(teacher[k], student[k], center[0], tau_t, tau_s)
            for k in range(row, row + patches)
        )
        row += patches
        total += crop_total / max(patches, 1)
    return total / len(masks)


def test_the_patch_loss_is_dinov2s_masked_cross_entropy() -> None:
    generator = torch.Generator().manual_seed(0)
    masks = torch.zeros(3, 6, dtype=torch.bool)
    masks[0, [1, 4]] = True
    masks[2, [0, 2, 3, 5]] = True  # crop 1 unmasked: it adds 0 but counts in the mean
    student = torch.randn(6, 5, generator=generator)
    teacher = torch.randn(6, 5, generator=generator)
    center = torch.randn(1, 5, generator=generator)
    ours = masked_patch_loss(student, teacher, masks, center, 0.04)
    expected = _direct_patch_loss(student, teacher, masks, center, 0.04, 0.1)
    assert ours.item() == pytest.approx(expected, rel=1e-5)


def test_ibot_trains_the_mask_token_and_moves_both_centres() -> None:
    torch.manual_seed(0)
    vit = build_backbone("vit-tiny", BackboneOptions(image_size=16, patch_size=4))
    method = IBOT(vit, prototypes=32, hidden_dim=32, projection_dim=8)
    views = [torch.randn(4, 3, s, s) for s in (16, 16, 8)]
    method.begin_step(Clock(0, 10, 5))
    output = method(views)
    output.loss.backward()
    assert output.loss.item() == pytest.approx(
        (output.metrics["image_loss"] + output.metrics["patch_loss"]).item()
    )
    assert method.mask_token.grad is not None and method.mask_token.grad.abs().sum() > 0
    method.after_step(Clock(1, 10, 5))
    assert method.center.abs().sum() > 0 and method.patch_center.abs().sum() > 0
    assert not torch.equal(method.center, method.patch_center)
