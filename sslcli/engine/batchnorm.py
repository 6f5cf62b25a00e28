"""BatchNorm over the global batch: statistics summed across every process of the run.

On GPUs torch's SyncBatchNorm does this; it does not run on the CPU, so CPU process groups
(gloo) use :class:`GlobalBatchNorm`, whose statistics go through the engine's differentiable
all-reduce. Either way 2 processes x batch B normalise exactly like 1 process x batch 2B.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from sslcli.engine.collectives import all_reduce_sum


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm (1d or 2d) whose batch statistics cover all ranks."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(input)
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        values = input.float()
        # One all-reduce of the sums, accumulated in float64: in float32, E[x^2] - E[x]^2
        # cancels catastrophically for channels with a large mean and a small spread.
        wide = values.double()
        local = torch.cat(
            [wide.sum(dims), (wide * wide).sum(dims), wide.new_tensor([values.numel() / channels])]
        )
        total = all_reduce_sum(local)
        count = total[-1]
        mean = total[:channels] / count
        variance = (total[channels : 2 * channels] / count - mean * mean).clamp_(min=0)
        mean, variance, count = mean.float(), variance.float(), count.float()
        centred = values - mean.view(shape)
        if self.track_running_stats:
            self._update_running_stats(mean, variance, count)
        normalised = centred * torch.rsqrt(variance.view(shape) + self.eps)
        if self.affine:
            normalised = normalised * self.weight.view(shape) + self.bias.view(shape)
        return normalised.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(
        self, mean: torch.Tensor, variance: torch.Tensor, count: torch.Tensor
    ) -> None:
        self.num_batches_tracked.add_(1)
        # torch's convention: momentum None means a cumulative average
        momentum = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked
        self.running_mean.mul_(1 - momentum).add_(momentum * mean)
        unbiased = variance * count / (count - 1)
        self.running_var.mul_(1 - momentum).add_(momentum * unbiased)


def synchronise_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """Make every BatchNorm in ``model`` use global statistics (call only when distributed)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return _to_global(model)


def _to_global(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        replacement = GlobalBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        replacement.load_state_dict(module.state_dict())
        # affine=False with track_running_stats=False holds no tensor: nothing to move
        tensors = itertools.chain(module.parameters(), module.buffers())
        if (first := next(tensors, None)) is not None:
            replacement.to(first.device)
        if module.affine:  # the same Parameters: frozen stays frozen (momentum targets)
            replacement.weight, replacement.bias = module.weight, module.bias
        return replacement
    for name, child in module.named_children():
        setattr(module, name, _to_global(child))
    return module
