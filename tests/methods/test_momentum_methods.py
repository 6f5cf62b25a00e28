import copy
import math

import pytest
import torch
import torch.nn.functional as F

from sslcli.methods.byol import BYOL, byol_loss
from sslcli.methods.moco import MoCo, moco_loss
from sslcli.methods.momentum import cosine_momentum, ema_update, frozen_copy
from sslcli.models.tiny_cnn import TinyCNN
from tests.methods.training import noisy_views


def test_cosine_momentum_rises_from_base_to_one() -> None:
    assert cosine_momentum(0.996, 0.0) == pytest.approx(0.996)
    assert cosine_momentum(0.996, 0.5) == pytest.approx(0.998)
    assert cosine_momentum(0.996, 1.0) == pytest.approx(1.0)


def test_ema_update_moves_the_target_towards_the_online_network() -> None:
    online = torch.nn.Linear(2, 2)
    target = frozen_copy(online)
    with torch.no_grad():
        online.weight.add_(1.0)
    before = target.weight.clone()
    ema_update(target, online, 0.9)
    torch.testing.assert_close(target.weight, 0.9 * before + 0.1 * online.weight)
    assert not target.weight.requires_grad


def test_ema_update_leaves_the_targets_batchnorm_statistics_its_own() -> None:
    online = torch.nn.BatchNorm1d(3)
    target = frozen_copy(online)
    online(torch.randn(8, 3) + 5)  # the online network's statistics move
    target(torch.randn(8, 3) - 5)  # and the target's own forward moves its own
    expected = target.running_mean.clone()
    ema_update(target, online, 0.9)
    torch.testing.assert_close(target.running_mean, expected)


def test_byol_loss_is_two_minus_twice_the_cosine() -> None:
    p = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    t = torch.tensor([[0.0, 3.0], [2.0, 2.0]])
    assert byol_loss(p, t).item() == pytest.approx((2 - 0 + 2 - 2) / 2)


def _regression_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """deepmind-research byol/utils/helpers.py ``regression_loss``: ||x/|x| - y/|y|||^2 per
    sample, which is 2 - 2 cos(x, y)."""
    return (F.normalize(x, dim=-1) - F.normalize(y, dim=-1)).pow(2).sum(dim=-1)


def _byol_loss_by_the_paper(method: BYOL, views: list[torch.Tensor]) -> torch.Tensor:
    """BYOL's loss (paper, Sec. 3.1: L + L~; byol_experiment.py ``loss_fn``): the regression
    loss of view 1's prediction to view 2's target projection PLUS that of view 2's to view
    1's, averaged over the batch."""
    p1, p2 = (method.predictor(method.projector(method.backbone(view))) for view in views)
    with torch.no_grad():
        t1, t2 = (method.target_projector(method.target_backbone(view)) for view in views)
    return (_regression_loss(p1, t2) + _regression_loss(p2, t1)).mean()


def test_byol_sums_the_losses_of_its_two_directions() -> None:
    torch.manual_seed(0)
    method = BYOL(TinyCNN(width=8), hidden_dim=32, projection_dim=16)
    views = noisy_views()
    expected = _byol_loss_by_the_paper(copy.deepcopy(method), views).item()
    assert method(views).loss.item() == pytest.approx(expected, rel=1e-5)


def test_moco_loss_matches_the_readable_infonce() -> None:
    generator = torch.Generator().manual_seed(0)
    q, k = torch.randn(5, 4, generator=generator), torch.randn(5, 4, generator=generator)
    qn, kn = torch.nn.functional.normalize(q, dim=1), torch.nn.functional.normalize(k, dim=1)
    expected = 0.0
    for i in range(5):
        scores = [math.exp(float(qn[i] @ kn[j]) / 0.2) for j in range(5)]
        expected += -math.log(scores[i] / sum(scores))
    assert moco_loss(q, k, 0.2).item() == pytest.approx(expected / 5 * 2 * 0.2, rel=1e-5)


def _official_moco_mlp(
    num_layers: int, input_dim: int, mlp_dim: int, output_dim: int, last_bn: bool = True
) -> torch.nn.Sequential:
    """``MoCo._build_mlp`` of facebookresearch/moco-v3 moco/builder.py, transcribed."""
    layers: list[torch.nn.Module] = []
    for index in range(num_layers):
        dim1 = input_dim if index == 0 else mlp_dim
        dim2 = output_dim if index == num_layers - 1 else mlp_dim
        layers.append(torch.nn.Linear(dim1, dim2, bias=False))
        if index < num_layers - 1:
            layers += [torch.nn.BatchNorm1d(dim2), torch.nn.ReLU(inplace=True)]
        elif last_bn:
            layers.append(torch.nn.BatchNorm1d(dim2, affine=False))
    return torch.nn.Sequential(*layers)


def test_moco_heads_are_those_of_the_official_resnet_recipe() -> None:
    """moco-v3 builder.py, MoCo_ResNet: projector ``_build_mlp(2, ...)`` ending in a
    BatchNorm without affine parameters, predictor ``_build_mlp(2, ..., False)``; no biases."""
    backbone = TinyCNN(width=8)
    method = MoCo(backbone, hidden_dim=32, projection_dim=16)
    assert repr(method.projector) == repr(_official_moco_mlp(2, backbone.out_dim, 32, 16))
    assert repr(method.predictor) == repr(_official_moco_mlp(2, 16, 32, 16, last_bn=False))
    assert repr(method.target_projector) == repr(method.projector)


@pytest.mark.parametrize("make", [BYOL, MoCo])
def test_a_momentum_method_trains_and_its_target_follows(make) -> None:
    torch.manual_seed(0)
    method = make(TinyCNN(width=8), hidden_dim=32, projection_dim=16)
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=0.05)
    images = torch.rand(16, 3, 16, 16)
    views = [images + 0.05 * torch.randn_like(images), images.flip(-1)]
    target_before = [p.clone() for p in method.target_backbone.parameters()]
    losses = []
    for step in range(10):
        output = method(views)
        losses.append(output.loss.item())
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        method.after_step((step + 1) / 100)
    assert losses[-1] < losses[0]
    moved = [
        not torch.equal(a, b)
        for a, b in zip(target_before, method.target_backbone.parameters(), strict=True)
    ]
    assert any(moved)
    assert all(p.grad is None for p in method.target_backbone.parameters())
