"""iBOT's masked-patch objective on top of DINO: DINOv2's recipe (Zhou et al. 2022, "iBOT:
Image BERT Pre-Training with Online Tokenizer", Sec. 3 and Eq. 2-3; Oquab et al. 2023,
"DINOv2", Sec. 4; the authors' dinov2/train/ssl_meta_arch.py and
dinov2/loss/ibot_patch_loss.py).

The student sees its global crops with blockwise-masked patches (``augment.patch_masks``:
half of the crops, 10-50% of their patches) replaced by a learnt mask token; the teacher sees
them whole. Beside DINO's loss on the class tokens, each masked patch's student distribution
is pulled to the teacher's at the same patch of the same crop, through the same head
(DINOv2's default, no separate iBOT head), the teacher's patch outputs centred by a centre of
their own. The masks of a step are drawn for the global batch from the run's seed and the
step, each process taking its own samples' share.
"""

from __future__ import annotations

import torch
from torch import nn

from sslcli.augment.patch_masks import global_batch_masks
from sslcli.engine.collectives import all_reduce_sum, rank, world_size
from sslcli.engine.contract import Clock, StepOutput
from sslcli.methods.base import per_resolution
from sslcli.methods.dino import (
    BASE_MOMENTUM,
    CENTER_MOMENTUM,
    DINO,
    STUDENT_TEMPERATURE,
    dino_loss,
    entropy_share,
)
from sslcli.models.tokens import masked_tokens, patch_grid


def masked_patch_loss(
    student: torch.Tensor,
    teacher: torch.Tensor,
    masks: torch.Tensor,
    center: torch.Tensor,
    teacher_temperature: float,
    student_temperature: float = STUDENT_TEMPERATURE,
) -> torch.Tensor:
    """``iBOTPatchLoss.forward_masked``: -sum_k q log p over each crop's masked patches,
    averaged within the crop, summed over crops and divided by the number of crops (an
    unmasked crop adds 0). ``student`` and ``teacher`` hold the masked patches' logits in
    the order of ``masks`` (crops, patches) True entries."""
    targets = torch.softmax((teacher - center) / teacher_temperature, dim=-1).detach()
    cross = torch.sum(-targets * torch.log_softmax(student / student_temperature, dim=-1), -1)
    weights = (1 / masks.sum(dim=-1).clamp(min=1)).unsqueeze(-1).expand_as(masks)[masks]
    return (cross * weights).sum() / len(masks)


class IBOT(DINO):
    needs_patches = True

    def __init__(
        self,
        backbone: nn.Module,
        prototypes: int | None = None,
        hidden_dim: int = 2048,
        projection_dim: int = 256,
        teacher_temp: float = 0.07,
        teacher_momentum: float = BASE_MOMENTUM,
        mask_ratio: float = 0.5,
    ) -> None:
        """DINO's settings, and ``mask_ratio``: the largest share of a crop's patches
        masked (the shares spread over [0.1, mask_ratio])."""
        super().__init__(
            backbone, prototypes, hidden_dim, projection_dim, teacher_temp, teacher_momentum
        )
        self.mask_token = nn.Parameter(torch.zeros(backbone.out_dim))
        self.register_buffer("patch_center", torch.zeros_like(self.center))
        self.mask_ratios = (min(0.1, mask_ratio), mask_ratio)
        self.mask_seed = 0
        self._batch_patch_center: torch.Tensor | None = None

    def begin_step(self, clock: Clock) -> None:
        super().begin_step(clock)
        # the run's seed (every process is seeded alike) and the step
        self.mask_seed = (torch.initial_seed() * 1_000_003 + clock.step) % 2**63

    def _masks(self, samples: int, rows: int, columns: int) -> torch.Tensor:
        """This process's (2 x samples, rows, columns) masks, view 0's then view 1's."""
        generator = torch.Generator().manual_seed(self.mask_seed)
        everyone = samples * world_size()
        masks = global_batch_masks(2 * everyone, rows, columns, self.mask_ratios, generator)
        mine = slice(rank() * samples, (rank() + 1) * samples)
        return torch.cat([masks[:everyone][mine], masks[everyone:][mine]])

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        if len(views) < 2:
            raise ValueError(f"iBOT takes 2 global views and any local ones, got {len(views)}")
        crops = torch.cat(views[:2])
        rows, columns = patch_grid(self.backbone, *crops.shape[-2:])
        masks = self._masks(len(views[0]), rows, columns).to(crops.device)
        tokens = masked_tokens(self.backbone, crops, masks, self.mask_token)
        features = [*tokens[:, 0].chunk(2), *per_resolution(self.backbone, views[2:])]
        student = self.head(torch.cat(features)).split([len(f) for f in features])
        flat = masks.flatten(1)
        student_patches = self.head(tokens[:, 1:][flat])
        with torch.no_grad():
            teacher_tokens = self.teacher_backbone.forward_features(crops)
            teacher = self.teacher_head(teacher_tokens[:, 0])
            teacher_patches = self.teacher_head(teacher_tokens[:, 1:][flat])
        with torch.autocast(teacher.device.type, enabled=False):
            teacher, teacher_patches = teacher.float(), teacher_patches.float()
            images = dino_loss([s.float() for s in student], list(teacher.chunk(2)), self.center,
                               self.temperature)  # fmt: skip
            patches = masked_patch_loss(student_patches.float(), teacher_patches, flat,
                                        self.patch_center, self.temperature)  # fmt: skip
            # the centres move after the step, by the mean teacher outputs of every process
            # (the class tokens', and the masked patches')
            sums = torch.stack([teacher.sum(dim=0), teacher_patches.sum(dim=0)]).detach()
            counts = torch.tensor([len(teacher), len(teacher_patches)], device=sums.device)
            sums, counts = all_reduce_sum(sums), all_reduce_sum(counts.to(sums.dtype))
            self._batch_center = sums[:1] / counts[0]
            self._batch_patch_center = sums[1:] / counts[1].clamp(min=1)
        metrics = {
            "image_loss": images.detach(),
            "patch_loss": patches.detach(),
            "teacher_entropy": entropy_share(teacher, self.center, self.temperature),
        }
        return StepOutput(images + patches, features[0].detach(), metrics)

    def after_step(self, clock: Clock) -> None:
        if self._batch_patch_center is not None:
            self.patch_center.mul_(CENTER_MOMENTUM).add_(
                self._batch_patch_center, alpha=1 - CENTER_MOMENTUM
            )
            self._batch_patch_center = None
        super().after_step(clock)
