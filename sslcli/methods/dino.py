"""DINO: self-distillation with no labels (Caron et al. 2021, "Emerging Properties in
Self-Supervised Vision Transformers", Sec. 3.1 and Algorithm 1; the authors' main_dino.py and
utils.py).

A student (backbone + ``DINOHead``) sees every crop, 2 global and N local; a teacher, the
student's exponential moving average (momentum 0.996 -> 1 on a cosine), sees the 2 global
crops. The teacher's outputs are centred (the centre an EMA, momentum 0.9, of the teacher's
mean output over the GLOBAL batch, every process's) and sharpened by a low temperature,
warmed up from 0.04; the loss is the cross-entropy from each global crop's teacher
distribution to every other crop's student distribution (temperature 0.1), averaged over
the pairs. Recipe: AdamW, lr 5e-4 per 256, weight decay 0.04 -> 0.4 on a cosine, gradients
clipped to norm 3 per parameter, the prototype layer frozen for the first epoch.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from sslcli.engine.collectives import all_reduce_sum, world_size
from sslcli.engine.contract import Clock, StepOutput
from sslcli.methods.base import SSLMethod, TrainingDefaults, per_resolution
from sslcli.methods.momentum import follow_online, frozen_copy
from sslcli.models.heads import DINOHead

STUDENT_TEMPERATURE = 0.1
WARMUP_TEACHER_TEMPERATURE = 0.04
TEACHER_WARMUP_EPOCHS = 30
"""The teacher temperature rises over this many epochs, or 3/10 of a shorter run."""
CENTER_MOMENTUM = 0.9
BASE_MOMENTUM = 0.996
CLIP_GRAD = 3.0
FREEZE_LAST_LAYER_EPOCHS = 1
IMAGENET_PROTOTYPES = 65536


def default_prototypes(images: int) -> int:
    """DINO's 65536 prototypes for ImageNet's 1.28M images, scaled with the data: a power of
    2 near one prototype per 20 images, from 1024 to 65536."""
    return int(min(IMAGENET_PROTOTYPES, max(1024, 2 ** round(math.log2(max(images, 1) / 20)))))


def teacher_temperature(clock: Clock, final: float) -> float:
    """DINO's per-epoch schedule: ``np.linspace(0.04, final, W)`` over the first W epochs
    (W = 30, or 3/10 of a shorter run rounded up), then ``final``."""
    warmup = min(TEACHER_WARMUP_EPOCHS, -(-clock.epochs * 3 // 10))
    epoch = clock.step // clock.steps_per_epoch
    if epoch >= warmup or warmup < 2:
        return final
    return WARMUP_TEACHER_TEMPERATURE + (final - WARMUP_TEACHER_TEMPERATURE) * epoch / (warmup - 1)


def dino_loss(
    student: list[torch.Tensor],
    teacher: list[torch.Tensor],
    center: torch.Tensor,
    teacher_temperature: float,
    student_temperature: float = STUDENT_TEMPERATURE,
) -> torch.Tensor:
    """``DINOLoss.forward``: the mean over pairs (teacher view i, student view v != i) of
    the batch mean of -sum_k q_i log p_v, q_i = softmax((t_i - center) / tau_t),
    p_v = softmax(s_v / tau_s). Student view i is the global crop teacher view i saw."""
    targets = [
        torch.softmax((logits - center) / teacher_temperature, dim=-1).detach()
        for logits in teacher
    ]
    log_probabilities = [
        torch.log_softmax(logits / student_temperature, dim=-1) for logits in student
    ]
    terms = [
        torch.sum(-target * log_probabilities[v], dim=-1).mean()
        for i, target in enumerate(targets)
        for v in range(len(student))
        if v != i
    ]
    return torch.stack(terms).mean()


def entropy_share(teacher: torch.Tensor, center: torch.Tensor, temperature: float) -> torch.Tensor:
    """The teacher's mean entropy as a share of ln K, detached: 1 is the uniform collapse
    (every prototype equally likely, the loss at ln K), near 0 the one-prototype collapse."""
    probabilities = torch.softmax((teacher.detach() - center) / temperature, dim=-1)
    entropy = -(probabilities * probabilities.clamp_min(1e-12).log()).sum(dim=-1).mean()
    return entropy / math.log(teacher.shape[-1])


def clip_per_parameter(parameters: list[nn.Parameter], largest: float) -> None:
    """``utils.clip_gradients``: each parameter's gradient scaled down to norm ``largest``
    when above it (on the device: no synchronisation per parameter)."""
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    norms = torch._foreach_norm(grads)
    scales = [torch.clamp(largest / (norm + 1e-6), max=1.0) for norm in norms]
    torch._foreach_mul_(grads, scales)


class DINO(SSLMethod):
    defaults = TrainingDefaults(
        "adamw", lr_per_256=0.0005, weight_decay=0.04, final_weight_decay=0.4, preset="dino"
    )
    multi_crop = True

    def __init__(
        self,
        backbone: nn.Module,
        prototypes: int | None = None,
        hidden_dim: int = 2048,
        projection_dim: int = 256,
        teacher_temp: float = 0.07,
        teacher_momentum: float = BASE_MOMENTUM,
    ) -> None:
        """``prototypes`` None: ImageNet's 65536 (a run fills it from its data size);
        ``projection_dim`` is the bottleneck before the prototypes; ``teacher_temp`` the
        teacher temperature after its warm-up from 0.04; ``teacher_momentum`` the EMA's
        momentum at the start (``--momentum_teacher``), raised to 1 on a cosine."""
        super().__init__(backbone)
        count = prototypes or IMAGENET_PROTOTYPES
        self.head = DINOHead(backbone.out_dim, count, hidden_dim, projection_dim)
        self.teacher_backbone = frozen_copy(backbone)
        self.teacher_head = frozen_copy(self.head)
        self.register_buffer("center", torch.zeros(1, count))
        self.final_teacher_temperature = teacher_temp
        self.teacher_momentum = teacher_momentum
        self.temperature = WARMUP_TEACHER_TEMPERATURE
        self._batch_center: torch.Tensor | None = None

    @classmethod
    def options_for_data(cls, options: dict[str, object], images: int) -> dict[str, object]:
        if options.get("prototypes") is None:
            return options | {"prototypes": default_prototypes(images)}
        return options

    def begin_step(self, clock: Clock) -> None:
        self.temperature = teacher_temperature(clock, self.final_teacher_temperature)

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        if len(views) < 2:
            raise ValueError(f"DINO takes 2 global views and any local ones, got {len(views)}")
        features = per_resolution(self.backbone, views)
        student = self.head(torch.cat(features)).split([len(f) for f in features])
        with torch.no_grad():
            teacher = self.teacher_head(self.teacher_backbone(torch.cat(views[:2])))
        with torch.autocast(teacher.device.type, enabled=False):
            teacher = teacher.float()
            loss = dino_loss([s.float() for s in student], list(teacher.chunk(2)), self.center,
                             self.temperature)  # fmt: skip
            # the centre moves after the step (a diverged step leaves it alone), by the mean
            # teacher output over every process's global crops
            total = all_reduce_sum(teacher.sum(dim=0, keepdim=True).detach())
            self._batch_center = total / (len(teacher) * world_size())
            metrics = {"teacher_entropy": entropy_share(teacher, self.center, self.temperature)}
        return StepOutput(loss, features[0].detach(), metrics)

    def prepare_gradients(self, clock: Clock) -> None:
        trained = [p for p in self.parameters() if p.requires_grad]
        clip_per_parameter(trained, CLIP_GRAD)
        if clock.epochs_done < FREEZE_LAST_LAYER_EPOCHS:
            for parameter in self.head.last_layer.parameters():
                parameter.grad = None

    def after_step(self, clock: Clock) -> None:
        if self._batch_center is not None:
            self.center.mul_(CENTER_MOMENTUM).add_(self._batch_center, alpha=1 - CENTER_MOMENTUM)
            self._batch_center = None
        pairs = [(self.teacher_backbone, self.backbone), (self.teacher_head, self.head)]
        follow_online(pairs, self.teacher_momentum, clock.progress)  # momentum_schedule[it]
