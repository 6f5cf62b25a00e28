"""DINO: the loss against the paper's formula on fixed tensors, its schedules, and what the
recipe does to gradients (clipping, the frozen prototype layer)."""

from __future__ import annotations

import pytest
import torch

from sslcli.engine.contract import Clock
from sslcli.methods.dino import (
    CLIP_GRAD,
    DINO,
    clip_per_parameter,
    default_prototypes,
    dino_loss,
    entropy_share,
    teacher_temperature,
)
from sslcli.models.backbones import BackboneOptions, build_backbone
from sslcli.models.heads import DINOHead
from tests.methods.formulas import centred_cross_entropy


def _direct_loss(student, teacher, center, tau_t, tau_s) -> float:
    """Algorithm 1 and Sec. 3.1, one sample and one pair at a time, in float64:
    H(P_t(x), P_s(x')) = -sum_k P_t(x)_k log P_s(x')_k, averaged over the pairs of a
    global crop x (teacher) and any other crop x' (student), and over the batch."""
    total, pairs = 0.0, 0
    for i, t_view in enumerate(teacher):
        for v, s_view in enumerate(student):
            if v == i:
                continue
            pair = sum(
                centred_cross_entropy(t_view[n], s_view[n], center[0], tau_t, tau_s)
                for n in range(len(t_view))
            )
            total += pair / len(t_view)
            pairs += 1
    return total / pairs


def test_the_loss_is_the_papers_cross_entropy_over_pairs_of_different_crops() -> None:
    generator = torch.Generator().manual_seed(0)
    student = [torch.randn(5, 7, generator=generator) for _ in range(4)]  # 2 global + 2 local
    teacher = [torch.randn(5, 7, generator=generator) for _ in range(2)]
    center = torch.randn(1, 7, generator=generator)
    ours = dino_loss(student, teacher, center, teacher_temperature=0.04)
    assert ours.item() == pytest.approx(_direct_loss(student, teacher, center, 0.04, 0.1), rel=1e-5)
    # 2 teacher views x 3 other student views: 6 pairs; with the pairs of the same crop
    # included the loss would differ
    same_crop = dino_loss(student[:2], teacher, center, 0.04)
    assert same_crop.item() == pytest.approx(_direct_loss(student[:2], teacher, center, 0.04, 0.1))


def test_the_teacher_temperature_warms_up_per_epoch_as_np_linspace() -> None:
    # 100 epochs: W = 30, linspace(0.04, 0.07, 30) over epochs 0-29, then 0.07
    clock = lambda epoch: Clock(epoch * 10 + 3, 1000, 10)  # noqa: E731
    expected = torch.linspace(0.04, 0.07, 30, dtype=torch.float64).tolist()
    for epoch in (0, 1, 15, 29):
        assert teacher_temperature(clock(epoch), 0.07) == pytest.approx(expected[epoch])
    assert teacher_temperature(clock(30), 0.07) == teacher_temperature(clock(99), 0.07) == 0.07
    # a 10-epoch run warms up over its first 3 epochs
    short = [teacher_temperature(Clock(e * 5, 50, 5), 0.07) for e in range(10)]
    assert short[:4] == pytest.approx([0.04, 0.055, 0.07, 0.07])


def test_prototypes_scale_with_the_data_to_imagenets_65536() -> None:
    assert default_prototypes(1_281_167) == 65536
    assert default_prototypes(100_000) == 4096
    assert default_prototypes(1797) == default_prototypes(10) == 1024
    assert default_prototypes(10**8) == 65536


def test_the_head_has_unit_prototypes_that_do_not_learn_their_norm() -> None:
    head = DINOHead(16, prototypes=32, hidden_dim=24, bottleneck_dim=8)
    weight = head.last_layer.weight
    assert torch.allclose(weight.norm(dim=1), torch.ones(32))
    trainable = {name for name, p in head.named_parameters() if p.requires_grad}
    assert "last_layer.parametrizations.weight.original0" not in trainable
    assert "last_layer.parametrizations.weight.original1" in trainable
    out = head(torch.randn(3, 16))
    assert out.shape == (3, 32)
    # the bottleneck is L2-normalised, the prototypes have norm 1: |logit| <= 1
    assert out.abs().max() <= 1 + 1e-5


def _dino(prototypes: int = 16) -> DINO:
    torch.manual_seed(0)
    backbone = build_backbone("tiny-cnn", BackboneOptions())
    return DINO(backbone, prototypes=prototypes, hidden_dim=32, projection_dim=8)


def _views() -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    sizes = (16, 16, 8, 8)
    return [torch.randn(6, 3, s, s, generator=generator) for s in sizes]


def test_the_last_layer_gets_no_gradient_in_the_first_epoch_only() -> None:
    method = _dino()
    last = list(method.head.last_layer.parameters())
    for epochs_done, frozen in ((0.0, True), (0.9, True), (1.0, False), (3.5, False)):
        method.zero_grad()
        method.begin_step(Clock(int(epochs_done * 10), 100, 10))
        method(_views()).loss.backward()
        method.prepare_gradients(Clock(int(epochs_done * 10), 100, 10))
        trained = [p.grad is not None for p in last if p.requires_grad]
        assert trained == [not frozen], epochs_done
        assert method.head.mlp[0].weight.grad is not None


def test_gradients_are_clipped_to_norm_3_per_parameter() -> None:
    big = torch.nn.Parameter(torch.zeros(4))
    small = torch.nn.Parameter(torch.zeros(4))
    big.grad = torch.tensor([30.0, 40.0, 0.0, 0.0])  # norm 50
    small.grad = torch.tensor([1.0, 0.0, 0.0, 0.0])
    clip_per_parameter([big, small], CLIP_GRAD)
    assert big.grad.norm().item() == pytest.approx(3.0, rel=1e-5)
    assert torch.allclose(big.grad, torch.tensor([1.8, 2.4, 0.0, 0.0]), atol=1e-5)
    assert torch.equal(small.grad, torch.tensor([1.0, 0.0, 0.0, 0.0]))


def test_the_centre_moves_after_the_step_by_the_mean_teacher_output() -> None:
    method = _dino()
    views = _views()
    with torch.no_grad():
        teacher = method.teacher_head(method.teacher_backbone(torch.cat(views[:2])))
    method.begin_step(Clock(0, 100, 10))
    method(views)
    assert torch.equal(method.center, torch.zeros(1, 16))  # not before the step is taken
    method.after_step(Clock(1, 100, 10))
    assert torch.allclose(method.center, 0.1 * teacher.mean(dim=0, keepdim=True), atol=1e-6)


def test_the_teacher_follows_the_student_and_sees_only_the_global_crops() -> None:
    method = _dino()
    student_before = [p.clone() for p in method.backbone.parameters()]
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    method.after_step(Clock(0, 100, 10))  # momentum 0.996 after the first step
    for target, before in zip(method.teacher_backbone.parameters(), student_before, strict=True):
        assert torch.allclose(target, before + 0.004, atol=1e-6)
    with pytest.raises(ValueError, match="2 global views"):
        method(_views()[:1])


def test_the_teachers_starting_momentum_is_an_option() -> None:
    torch.manual_seed(0)
    backbone = build_backbone("tiny-cnn", BackboneOptions())
    method = DINO(backbone, prototypes=16, hidden_dim=32, projection_dim=8, teacher_momentum=0.9)
    before = [p.clone() for p in method.backbone.parameters()]
    with torch.no_grad():
        for p in method.backbone.parameters():
            p.add_(1.0)
    method.after_step(Clock(0, 100, 10))
    for target, start in zip(method.teacher_backbone.parameters(), before, strict=True):
        assert torch.allclose(target, start + 0.1, atol=1e-6)


def test_the_teachers_entropy_share_reads_1_when_uniform_and_0_when_one_hot() -> None:
    uniform = torch.zeros(4, 16)
    one_hot = torch.zeros(4, 16)
    one_hot[:, 3] = 10.0
    center = torch.zeros(1, 16)
    assert entropy_share(uniform, center, 0.04).item() == pytest.approx(1.0)
    assert entropy_share(one_hot, center, 0.04).item() == pytest.approx(0.0, abs=1e-6)
    method = _dino()
    method.begin_step(Clock(0, 100, 10))
    share = method(_views()).metrics["teacher_entropy"]
    assert 0 <= share.item() <= 1
