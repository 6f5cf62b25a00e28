"""The latent-variable predictive method: z inference, the free energy, the loss, training."""

import pytest
import torch
import torch.nn.functional as F

from sslcli.methods.latent import Z_BOUND, LatentPredictive
from sslcli.models.backbones import BackboneOptions, build_backbone
from tests.methods.training import losses_over_steps


def _method(**options: object) -> LatentPredictive:
    torch.manual_seed(0)
    options = {"hidden_dim": 32, "projection_dim": 16, "latent_dim": 4, **options}
    return LatentPredictive(build_backbone("tiny-cnn", BackboneOptions()), **options)


def _pairs(count: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    context = torch.randn(count, 16, generator=generator)
    target = F.layer_norm(torch.randn(count, 16, generator=generator), (16,))
    return context, target


@pytest.mark.parametrize("z_reg", ["l2", "l1"])
def test_inferring_z_lowers_the_energy_and_f_never_exceeds_the_energy_at_zero(z_reg: str) -> None:
    method = _method(z_reg=z_reg, z_steps=20, z_lr=5.0, z_weight=0.01)
    context, target = _pairs()
    inferred = method.infer(context, target)
    at_zero = method.energy(context, target, torch.zeros(64, 4))
    torch.testing.assert_close(inferred.energy_at_zero, at_zero)
    assert (inferred.free_energy <= inferred.energy_at_zero).all()
    regularised = 0.01 * method.regulariser(inferred.z)
    torch.testing.assert_close(
        inferred.free_energy, method.energy(context, target, inferred.z) + regularised
    )
    assert inferred.free_energy.mean() < 0.97 * at_zero.mean()  # z explains part of the error
    assert (inferred.z.abs() <= Z_BOUND).all() and inferred.z.norm(dim=1).mean() > 0


def test_f_never_exceeds_the_energy_at_zero_even_with_a_step_size_far_too_large() -> None:
    method = _method(z_steps=5, z_lr=1e4)
    context, target = _pairs()
    inferred = method.infer(context, target)
    assert (inferred.free_energy <= inferred.energy_at_zero).all()


def test_a_heavy_regulariser_keeps_z_at_zero() -> None:
    method = _method(z_steps=10, z_lr=1.0, z_reg="l1", z_weight=100.0)
    inferred = method.infer(*_pairs())
    assert torch.equal(inferred.z, torch.zeros_like(inferred.z))


@pytest.mark.parametrize("target", ["online", "ema"])
def test_the_loss_and_its_gradients_match_a_direct_computation(target: str) -> None:
    method = _method(z_dropout=0.25, target=target)
    views = [torch.rand(8, 3, 16, 16), torch.rand(8, 3, 16, 16)]
    output = method(views)
    output.loss.backward()
    gradients = {name: p.grad.clone() for name, p in method.named_parameters() if p.requires_grad}
    method.zero_grad()
    # each view through the networks on its own (BatchNorm statistics per view), as in training
    s1, s2 = (method.context(view) for view in views)
    if target == "online":  # the other view's embedding itself, gradient included
        t1, t2 = s1, s2
    else:
        with torch.no_grad():
            t1, t2 = (
                F.layer_norm(method.target_projector(method.target_backbone(view)), (16,))
                for view in views
            )
    context, target_ = torch.cat([s1, s2]), torch.cat([t2, t1])
    z = method.infer(context, target_).z
    error_z = ((method.predictor(context, z) - target_) ** 2).mean(dim=1)
    error_0 = ((method.predictor(context, torch.zeros_like(z)) - target_) ** 2).mean(dim=1)
    prediction = (0.75 * error_z + 0.25 * error_0).mean()
    expected = (
        25 * prediction
        + 25 * (_variance(s1) + _variance(s2)) / 2
        + _covariance(s1)
        + _covariance(s2)
    )
    torch.testing.assert_close(output.loss, expected, rtol=1e-5, atol=1e-6)
    expected.backward()
    for name, gradient in gradients.items():
        torch.testing.assert_close(gradient, method.get_parameter(name).grad, msg=name)
    assert set(output.metrics) == {"energy", "z_gap", "z_norm"}
    assert output.metrics["z_gap"] >= 0


def _variance(x: torch.Tensor) -> torch.Tensor:
    """VICReg's variance term (Bardes et al. 2022, eq. 1), gamma 1, eps 1e-4."""
    return F.relu(1 - torch.sqrt(x.var(dim=0) + 1e-4)).mean()


def _covariance(x: torch.Tensor) -> torch.Tensor:
    """VICReg's covariance term (eq. 3): the squared off-diagonal covariances over D."""
    c = torch.cov(x.T)
    return (c.pow(2).sum() - c.diagonal().pow(2).sum()) / x.shape[1]


@pytest.mark.parametrize("target", ["online", "ema"])
def test_a_clip_predicts_its_future_alone_and_the_loss_matches_a_direct_computation(
    target: str,
) -> None:
    method = _method(z_dropout=0.25, target=target, context_frames=3)
    with torch.no_grad():  # away from the initial "newest frame alone", so every frame counts
        method.temporal.mix.weight.normal_(0, 0.1)
    clips, futures = torch.rand(8, 3, 3, 16, 16), torch.rand(8, 3, 16, 16)
    output = method([clips, futures])
    output.loss.backward()
    gradients = {name: p.grad.clone() for name, p in method.named_parameters() if p.requires_grad}
    method.zero_grad()
    # every frame of the step through the backbone at once (BatchNorm over them all)
    frames = method.backbone(torch.cat([clips.reshape(24, 3, 16, 16), futures]))
    width = frames.shape[1]
    past = frames[:24].reshape(8, 3 * width)  # clip i: its frames oldest first, concatenated
    mix = method.temporal.mix
    s_x = method.projector(past @ mix.weight.T + mix.bias)
    s_y = method.projector(frames[24:])
    if target == "online":
        t_y = s_y
    else:
        with torch.no_grad():
            t_y = F.layer_norm(method.target_projector(method.target_backbone(futures)), (16,))
    z = method.infer(s_x, t_y).z  # x -> y only: no prediction of the past from the future
    error_z = ((method.predictor(s_x, z) - t_y) ** 2).mean(dim=1)
    error_0 = ((method.predictor(s_x, torch.zeros_like(z)) - t_y) ** 2).mean(dim=1)
    prediction = (0.75 * error_z + 0.25 * error_0).mean()
    expected = (
        25 * prediction
        + 25 * (_variance(s_x) + _variance(s_y)) / 2
        + _covariance(s_x)
        + _covariance(s_y)
    )
    torch.testing.assert_close(output.loss, expected, rtol=1e-5, atol=1e-6)
    expected.backward()
    for name, gradient in gradients.items():
        torch.testing.assert_close(gradient, method.get_parameter(name).grad, msg=name)


def test_a_clip_context_starts_as_its_newest_frame_and_keeps_the_frames_order() -> None:
    method = _method(context_frames=2).eval()
    clips = torch.rand(4, 2, 3, 16, 16)
    with torch.no_grad():
        newest = method.projector(method.backbone(clips[:, 1]))
        torch.testing.assert_close(method.context(clips), newest)
        method.temporal.mix.weight.normal_(0, 0.1)
        reversed_order = method.context(clips.flip(1))
        assert not torch.allclose(method.context(clips), reversed_order, atol=1e-4)
    with pytest.raises(ValueError, match="clips of 2 frames"):
        method.context(torch.rand(4, 3, 3, 16, 16))


def test_only_the_ema_target_keeps_a_momentum_copy_and_the_online_one_is_the_context() -> None:
    online, ema = _method(), _method(target="ema")
    assert not any(name.startswith("target_") for name in online.state_dict())
    assert any(name.startswith("target_") for name in ema.state_dict())
    images = torch.rand(8, 3, 16, 16)
    with torch.no_grad():
        torch.testing.assert_close(online.target(images), online.context(images))


def test_an_unknown_target_is_refused() -> None:
    with pytest.raises(ValueError, match="target must be one of"):
        _method(target="mean")


@pytest.mark.parametrize("target", ["online", "ema"])
def test_a_short_training_lowers_the_loss_without_collapsing(target: str) -> None:
    method = _method(target=target)
    losses = losses_over_steps(method, lr=0.05, steps=20)
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0]
    with torch.no_grad():
        embeddings = method.context(torch.rand(32, 3, 16, 16))
    assert embeddings.std(dim=0).mean() > 0.1
