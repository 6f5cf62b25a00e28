import copy
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sslcli.engine.contract import Logged, Observer, StepOutput
from sslcli.methods.byol import BYOL, byol_loss
from sslcli.methods.moco import MoCo, moco_loss
from sslcli.methods.momentum import cosine_momentum, ema_update, frozen_copy
from sslcli.models.tiny_cnn import TinyCNN
from tests.methods.training import (
    assert_close_by_name,
    fit_with_trainer,
    noisy_views,
    official_first_lars_step,
)


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


def _moco_loss_by_the_paper(method: MoCo, views: list[torch.Tensor]) -> torch.Tensor:
    """MoCo v3's loss (facebookresearch/moco-v3 moco/builder.py ``forward``):
    ``contrastive_loss(q1, k2) + contrastive_loss(q2, k1)``, each the cross-entropy of the
    normalised queries' scores against the normalised keys over T, times 2T."""
    q1, q2 = (method.predictor(method.projector(method.backbone(view))) for view in views)
    with torch.no_grad():
        k1, k2 = (method.target_projector(method.target_backbone(view)) for view in views)

    def contrastive(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        logits = F.normalize(q, dim=1) @ F.normalize(k, dim=1).T / method.temperature
        return F.cross_entropy(logits, torch.arange(len(q))) * 2 * method.temperature

    return contrastive(q1, k2) + contrastive(q2, k1)


class _AfterEachStep(Observer):
    """The module's parameters (online and target) after each step's update and EMA."""

    def __init__(self, module: torch.nn.Module) -> None:
        self.module = module
        self.parameters: dict[int, dict[str, torch.Tensor]] = {}

    def on_log(self, step: int, output: StepOutput) -> Logged:
        named = self.module.named_parameters()
        self.parameters[step] = {name: p.detach().clone() for name, p in named}
        return Logged()


@pytest.mark.parametrize(
    ("make", "paper_loss", "base_momentum", "schedule_step"),
    [
        pytest.param(BYOL, _byol_loss_by_the_paper, 0.996, 0, id="byol"),
        pytest.param(MoCo, _moco_loss_by_the_paper, 0.99, 1, id="moco"),
    ],
)
def test_a_trainer_step_is_the_papers_loss_a_lars_step_and_the_scheduled_ema(
    tmp_path: Path, make, paper_loss, base_momentum: float, schedule_step: int
) -> None:
    """The first of 4 steps of the Trainer (LARS, no warm-up: the base lr): the loss is the
    paper's on the initial weights, the online network takes the official LARS step on its
    gradient, and the target becomes m x target + (1 - m) x the updated online network with
    the cosine momentum m = 1 - (1 - m0) (cos(pi k / 4) + 1) / 2: BYOL's of step k = 0, m0
    itself (Sec. 3.1; ``byol_experiment.py`` updates the target after the online step with
    that step's momentum); MoCo v3's of step k = 1 (``main_moco.py`` computes the next
    step's momentum, ``adjust_moco_momentum``, and ``builder.py`` applies it at the start of
    that step's forward pass)."""
    torch.manual_seed(0)
    method = make(TinyCNN(width=4), hidden_dim=16, projection_dim=8)
    views = noisy_views(batch=32)
    start = copy.deepcopy(method)
    loss = paper_loss(start, views)
    loss.backward()
    lr, weight_decay, steps = 0.3, 1.5e-6, 4

    after = _AfterEachStep(method)
    records = fit_with_trainer(method, "lars", lr, weight_decay, views, tmp_path, steps, [after])

    assert records[0]["step"] == 1 and records[0]["loss"] == pytest.approx(loss.item(), rel=1e-5)
    online = {
        name: official_first_lars_step(p.detach(), p.grad, lr, weight_decay)
        for name, p in start.named_parameters()
        if p.requires_grad
    }
    momentum = 1 - (1 - base_momentum) * (math.cos(math.pi * schedule_step / steps) + 1) / 2
    target = {
        name: momentum * p.detach() + (1 - momentum) * online[name.removeprefix("target_")]
        for name, p in start.named_parameters()
        if not p.requires_grad
    }
    assert target and all(name.startswith("target_") for name in target)
    assert_close_by_name(after.parameters[1], online | target)
    assert all(p.grad is None for p in method.parameters() if not p.requires_grad)
