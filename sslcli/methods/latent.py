"""A latent-variable joint-embedding predictive architecture: no negatives, a regularised z.

For two views x and y of an image: the context s_x = expander(backbone(x)); a target t_y; a
predictor g(s_x, z) (an MLP with LayerNorm) guesses t_y from s_x and a small latent z.
Two targets (``target``):

- ``online`` (the default): t_y = s_y, the same network on the other view, with gradient, as
  in LeCun's JEPA trained with VICReg's terms: the variance and covariance terms below keep
  both embeddings from collapsing. It is the default because it measures better: on the
  digits benchmark with the small CNN, kNN 0.946-0.950 against the EMA target's 0.758, and
  it needs no second backbone (benchmarks/RESULTS.md).
- ``ema``: t_y = LayerNorm(EMA expander(EMA backbone(y))), without gradient (BYOL / I-JEPA).

- Energy E(x, y, z) = ||t_y - g(s_x, z)||^2 / D.
- Regulariser R(z) = ||z||^2 / 2 (``l2``) or ||z||_1 (``l1``), weighted by ``z_weight``;
  z stays inside the box [-Z_BOUND, Z_BOUND].
- Free energy F(x, y) = min_z E + z_weight R(z): from z = 0, ``z_steps`` proximal gradient
  steps on z alone (``torch.autograd.grad`` on z: no parameter gradient, so nothing for DDP
  to reduce); the best z seen is kept, so F <= E(x, y, 0) always.
- Training loss, both directions (x -> y and y -> x):
  25 x [(1 - p) E(z*) + p E(0)] + VICReg's variance (25) and covariance (1) terms on the
  context embeddings of the GLOBAL batch. The bracket is z-dropout (z zeroed with
  probability p, so x must carry the prediction) taken in expectation: the same gradient on
  average, no random mask, and 2 processes still equal 1 on the doubled batch.

On video (``train-latent --pairs future``, pairs from ``data.clips``) x is a past clip of K
frames and y the frame h later: one direction only (the past predicts the future, not the
reverse), with the same VICReg terms on the context of x and on y's embedding. The context
of a clip embeds each frame with the backbone and mixes the K embeddings, concatenated in time
order, with one linear layer (``TemporalMix``) before the expander. Per-frame embeddings keep
one image encoder for x, y, ``embed`` and ``export``; concatenation, unlike a mean over time,
keeps the order of the frames, and so the direction of the motion that tells the next frame.
Measured on synthetic moving digits (benchmarks/RESULTS.md), F tells another video's future
from the true one, but not another moment of the same video: nothing in these terms needs
the embedding to say where the digit is, and the CNN backbones average over space.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from sslcli.engine.collectives import gather
from sslcli.engine.contract import Clock, StepOutput
from sslcli.methods.base import SSLMethod, TrainingDefaults, per_view
from sslcli.methods.momentum import follow_online, frozen_copy
from sslcli.methods.vicreg import covariance_term, variance_term
from sslcli.models.heads import mlp

Z_BOUND = 3.0
Z_REGULARISERS = ("l2", "l1")
TARGETS = ("online", "ema")


def squared_error(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """E per sample: the mean of the squared differences over all but the first axis, fp32."""
    return (prediction.float() - target).pow(2).flatten(1).mean(dim=1)


class TemporalMix(nn.Module):
    """K per-frame features, oldest first, concatenated and mapped back to one feature by a
    linear layer that starts as "the newest frame alone" (the older frames' weights at 0)."""

    def __init__(self, dim: int, frames: int) -> None:
        super().__init__()
        self.frames = frames
        self.mix = nn.Linear(frames * dim, dim)
        with torch.no_grad():
            self.mix.weight.zero_()
            self.mix.weight[:, (frames - 1) * dim :].copy_(torch.eye(dim))
            self.mix.bias.zero_()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B x K, D) features of B clips, frame-major within a clip, to (B, D)."""
        return self.mix(features.reshape(-1, self.frames * features.shape[1]))


class LatentPredictor(nn.Module):
    """g(s, z): Linear-LayerNorm-GELU blocks on the concatenation of s and z."""

    def __init__(self, dim: int, latent_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim + latent_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, dim),
        )

    def forward(self, context: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.given(context)(z)

    def given(self, context: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """g(context, .) as a function of z alone; the first layer's share of the context is
        computed once, for the many z that inference tries."""
        first = self.net[0]
        width = context.shape[1]
        from_context = F.linear(context, first.weight[:, :width], first.bias)

        def predict(z: torch.Tensor) -> torch.Tensor:
            hidden = from_context + F.linear(z.to(from_context.dtype), first.weight[:, width:])
            return self.net[1:](hidden)

        return predict


@dataclass
class Inference:
    """The outcome of minimising the energy over z, per sample (no gradient)."""

    z: torch.Tensor
    free_energy: torch.Tensor
    """F = E(z*) + z_weight R(z*)."""
    energy_at_zero: torch.Tensor
    """E(z = 0); the z-gap is ``energy_at_zero - free_energy`` >= 0."""


@dataclass(frozen=True)
class ZSearch:
    """F = min over z of E(z) + weight R(z), per sample: from z = 0, ``steps`` proximal
    gradient steps on z alone (``torch.autograd.grad`` on z: no parameter gradient), the best
    z seen kept, so F <= E(z = 0) always; z stays inside [-Z_BOUND, Z_BOUND]."""

    latent_dim: int
    steps: int
    lr: float
    reg: str
    weight: float

    def __post_init__(self) -> None:
        if self.reg not in Z_REGULARISERS:
            raise ValueError(f"z_reg must be one of {Z_REGULARISERS}, got {self.reg!r}")

    def regulariser(self, z: torch.Tensor) -> torch.Tensor:
        return 0.5 * z.pow(2).sum(dim=1) if self.reg == "l2" else z.abs().sum(dim=1)

    def minimise(
        self,
        energy_of: Callable[[torch.Tensor], torch.Tensor],
        count: int,
        device: torch.device,
    ) -> Inference:
        """``energy_of(z)``: E per sample for the (count, latent_dim) z, differentiable in z."""
        z = torch.zeros(count, self.latent_dim, device=device)
        best_z, best = torch.zeros_like(z), None
        steps = self.steps if self.latent_dim else 0  # no z: F = E
        with torch.enable_grad():
            for step in range(steps + 1):
                z.requires_grad_(True)
                energy = energy_of(z)
                total = energy.detach() + self.weight * self.regulariser(z.detach())
                if best is None:
                    at_zero, best = energy.detach(), total
                else:
                    better = total < best
                    best = torch.where(better, total, best)
                    best_z = torch.where(better[:, None], z.detach(), best_z)
                if step == steps:
                    break
                (gradient,) = torch.autograd.grad(energy.sum(), z)
                z = self._proximal(z.detach() - self.lr * gradient)
        return Inference(best_z.detach(), best, at_zero)

    def _proximal(self, z: torch.Tensor) -> torch.Tensor:
        """The regulariser's proximal step (shrink for l2, soft-threshold for l1), boxed."""
        shrink = self.lr * self.weight
        if self.reg == "l2":
            return (z / (1 + shrink)).clamp(-Z_BOUND, Z_BOUND)
        return (z.sign() * (z.abs() - shrink).clamp_min(0)).clamp(-Z_BOUND, Z_BOUND)


class LatentPredictive(SSLMethod):
    defaults = TrainingDefaults(
        optimizer="lars", lr_per_256=0.2, weight_decay=1e-6, preset="vicreg"
    )

    def __init__(
        self,
        backbone: nn.Module,
        hidden_dim: int = 2048,
        projection_dim: int = 256,
        latent_dim: int = 16,
        z_steps: int = 5,
        z_lr: float = 10.0,
        z_reg: str = "l2",
        z_weight: float = 0.1,
        z_dropout: float = 0.5,
        target: str = "online",
        base_momentum: float = 0.99,
        context_frames: int = 1,
    ) -> None:
        if target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
        if context_frames < 1:
            raise ValueError(f"context_frames must be 1 or more, got {context_frames}")
        super().__init__(backbone)
        self.context_frames = context_frames
        if context_frames > 1:
            self.temporal = TemporalMix(backbone.out_dim, context_frames)
        self.projector = mlp(backbone.out_dim, hidden_dim, projection_dim, layers=3)
        self.predictor = LatentPredictor(projection_dim, latent_dim, hidden_dim)
        self.target_kind = target
        self.base_momentum = base_momentum
        if target == "ema":
            self.target_backbone = frozen_copy(backbone)
            self.target_projector = frozen_copy(self.projector)
        self.latent_dim = latent_dim
        self.search = ZSearch(latent_dim, z_steps, z_lr, z_reg, z_weight)
        self.z_dropout = z_dropout

    def context(self, images: torch.Tensor) -> torch.Tensor:
        """s_x of images (B, C, H, W), or of clips (B, K, C, H, W) of ``context_frames``."""
        if images.dim() == 4:
            if self.context_frames > 1:
                raise ValueError(f"this model's context is a clip of {self.context_frames} frames")
            return self.projector(self.backbone(images))
        return self.projector(self._clip_features(images))

    def _clip_features(self, clips: torch.Tensor) -> torch.Tensor:
        count, frames = clips.shape[:2]
        if frames != self.context_frames:
            raise ValueError(f"clips of {self.context_frames} frames expected, got {frames}")
        features = self.backbone(clips.flatten(0, 1))
        return self.temporal(features) if frames > 1 else features.reshape(count, -1)

    @torch.no_grad()
    def target(self, images: torch.Tensor) -> torch.Tensor:
        """t_y, what the predictor guesses (fp32, no gradient: for energy and sweeps)."""
        if self.target_kind == "online":
            return self.projector(self.backbone(images)).float()
        encoded = self.target_projector(self.target_backbone(images)).float()
        return F.layer_norm(encoded, encoded.shape[1:])

    def energy(self, context: torch.Tensor, target: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """E per sample: the mean squared error of the prediction, in fp32."""
        return squared_error(self.predictor(context, z), target)

    def regulariser(self, z: torch.Tensor) -> torch.Tensor:
        return self.search.regulariser(z)

    def infer(self, context: torch.Tensor, target: torch.Tensor) -> Inference:
        """min over z of E + z_weight R(z), per sample, by proximal gradient steps on z."""
        predict = self.predictor.given(context.detach())
        target = target.detach()
        energy_of = lambda z: squared_error(predict(z), target)  # noqa: E731
        return self.search.minimise(energy_of, len(context), context.device)

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        if len(views) != 2:
            raise ValueError(f"{type(self).__name__} takes 2 views, got {len(views)}")
        if views[0].dim() == 5:  # video pairs: [clips, futures]
            return self._continuation(views[0], views[1])
        features = per_view(self.backbone, views)
        s1, s2 = per_view(self.projector, features)
        if self.target_kind == "online":
            t1, t2 = s1.float(), s2.float()
        else:
            t1, t2 = per_view(self.target, views)
        context, target = torch.cat([s1, s2]), torch.cat([t2, t1])
        return self._predicted(context, target, s1, s2, features[0])

    def _continuation(self, clips: torch.Tensor, futures: torch.Tensor) -> StepOutput:
        """x -> y alone: the past's context predicts the future frame's target."""
        frame_features = self.backbone(torch.cat([clips.flatten(0, 1), futures]))
        past, future_features = frame_features.split(
            [clips.shape[0] * clips.shape[1], len(futures)]
        )
        if self.context_frames > 1:
            past = self.temporal(past)
        s_x, s_y = self.projector(past), self.projector(future_features)
        target = s_y.float() if self.target_kind == "online" else self.target(futures)
        return self._predicted(s_x, target, s_x, s_y, future_features)

    def _predicted(
        self,
        context: torch.Tensor,
        target: torch.Tensor,
        s1: torch.Tensor,
        s2: torch.Tensor,
        features: torch.Tensor,
    ) -> StepOutput:
        """The loss of predicting ``target`` from ``context`` with the inferred z, and the
        VICReg terms on the two embeddings s1, s2 of the global batch."""
        inferred = self.infer(context, target)
        # the predictor runs in the training precision; the energies are fp32 (squared_error)
        predicted = self.energy(context, target, inferred.z)
        unaided = self.energy(context, target, torch.zeros_like(inferred.z))
        with torch.autocast(context.device.type, enabled=False):
            prediction = (1 - self.z_dropout) * predicted + self.z_dropout * unaided
            everyone1, everyone2 = gather(s1.float()), gather(s2.float())
            spread = (variance_term(everyone1) + variance_term(everyone2)) / 2
            redundancy = covariance_term(everyone1) + covariance_term(everyone2)
            loss = 25 * prediction.mean() + 25 * spread + redundancy
        metrics = {
            "energy": predicted.detach().mean(),
            "z_gap": (inferred.energy_at_zero - inferred.free_energy).mean(),
            "z_norm": inferred.z.norm(dim=1).mean(),
        }
        return StepOutput(loss, features.detach(), metrics)

    def after_step(self, clock: Clock) -> None:
        if self.target_kind == "ema":
            pairs = [(self.target_backbone, self.backbone), (self.target_projector, self.projector)]
            follow_online(pairs, self.base_momentum, clock.progress)
