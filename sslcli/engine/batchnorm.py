"""BatchNorm over the global batch: statistics summed across every process of the run.

On GPUs torch's SyncBatchNorm does this; it does not run on the CPU, so CPU process groups
(gloo) use :class:`GlobalBatchNorm`. Either way 2 processes x batch B normalise exactly like
1 process x batch 2B.

:class:`GlobalBatchNorm` follows torch's ``SyncBatchNorm`` autograd function
(``torch/nn/modules/_functions.py``): forward all-reduces each channel's sum and sum of
squares, backward all-reduces each channel's sum(dy) and sum(dy * xhat); autograd keeps only
the input and the per-channel statistics, so the memory a BatchNorm holds for backward falls
with the number of processes like the rest of the activations.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import nn
from torch.autograd.function import FunctionCtx, once_differentiable

from sslcli.engine.collectives import all_reduce_sum


@dataclass(frozen=True)
class _Statistics:
    """Per-channel statistics of the global batch, in float32, and its size per channel."""

    mean: torch.Tensor
    variance: torch.Tensor
    """Biased (divided by ``count``), as BatchNorm normalises with."""
    count: torch.Tensor
    """0-d, float64: a tensor, so that no device synchronises to read it."""


def _reduced_dims(input: torch.Tensor) -> list[int]:
    """Every dimension but the channels (dim 1)."""
    return [0, *range(2, input.dim())]


def _per_channel(values: torch.Tensor, input: torch.Tensor) -> torch.Tensor:
    """A (C,) vector shaped to broadcast against ``input`` (N, C, ...)."""
    return values.view(1, -1, *[1] * (input.dim() - 2))


@torch.no_grad()
def _global_statistics(input: torch.Tensor) -> _Statistics:
    """Mean and variance of every channel over all ranks' batches: one all-reduce.

    The sums accumulate in float64: in float32, E[x^2] - E[x]^2 cancels catastrophically for
    channels with a large mean and a small spread. The float64 copy is freed on return.
    """
    channels = input.shape[1]
    wide = input.to(torch.float64, copy=True)  # squared in place below
    local = torch.cat(
        [
            wide.sum(_reduced_dims(input)),
            wide.square_().sum(_reduced_dims(input)),
            wide.new_tensor([input.numel() / channels]),
        ]
    )
    del wide
    total = all_reduce_sum(local)
    count = total[-1]
    mean = total[:channels] / count
    variance = (total[channels : 2 * channels] / count - mean * mean).clamp_(min=0)
    return _Statistics(mean.float(), variance.float(), count)


class _GlobalNormalise(torch.autograd.Function):
    """y = (x - mean) * invstd * weight + bias with the global batch's mean and invstd.

    Backward as torch's ``SyncBatchNorm`` (``torch/nn/modules/_functions.py``): the input's
    gradient needs sum(dy) and sum(dy * xhat) over the global batch (one all-reduce); the
    weight's and bias's gradients are this rank's own sums, which DDP then averages over
    ranks like every other parameter's. Computed in float32 whatever the input's dtype.
    """

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        input: torch.Tensor,
        weight: torch.Tensor | None,
        bias: torch.Tensor | None,
        mean: torch.Tensor,
        invstd: torch.Tensor,
        count: torch.Tensor,
    ) -> torch.Tensor:
        ctx.save_for_backward(input, weight, mean, invstd, count)
        scale = invstd if weight is None else invstd * weight.float()
        # a bf16 input minus the float32 mean promotes to float32 without a float32 copy
        output = (input - _per_channel(mean, input)).mul_(_per_channel(scale, input))
        if bias is not None:
            output.add_(_per_channel(bias.float(), input))
        return output.to(input.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: FunctionCtx, grad_output: torch.Tensor) -> tuple:
        input, weight, mean, invstd, count = ctx.saved_tensors
        dims = _reduced_dims(input)
        xhat = (input - _per_channel(mean, input)).mul_(_per_channel(invstd, input))
        sum_dy = grad_output.sum(dims, dtype=torch.float64)
        sum_dy_xhat = (grad_output * xhat).sum(dims, dtype=torch.float64)
        grad_input = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            # every rank takes this branch: requires_grad is the same on all of them
            total = all_reduce_sum(torch.cat([sum_dy, sum_dy_xhat]))
            mean_dy, mean_dy_xhat = (total / count).float().chunk(2)
            scale = invstd if weight is None else invstd * weight.float()
            # (dy - mean(dy) - xhat * mean(dy * xhat)) * scale, in xhat's memory
            grad_input = xhat.mul_(-_per_channel(mean_dy_xhat, input))
            grad_input.sub_(_per_channel(mean_dy, input)).add_(grad_output)
            grad_input = grad_input.mul_(_per_channel(scale, input)).to(input.dtype)
        if weight is not None:  # the bias is there when the weight is (affine)
            grad_weight = sum_dy_xhat.to(weight.dtype) if ctx.needs_input_grad[1] else None
            grad_bias = sum_dy.to(weight.dtype) if ctx.needs_input_grad[2] else None
        return grad_input, grad_weight, grad_bias, None, None, None


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm (1d or 2d) whose batch statistics cover all ranks."""

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2-D input, got {input.dim()}-D")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return super().forward(input)
        self._check_input_dim(input)
        statistics = _global_statistics(input.detach())
        if self.track_running_stats:
            self._update_running_stats(statistics)
        invstd = torch.rsqrt(statistics.variance + self.eps)
        return _GlobalNormalise.apply(
            input, self.weight, self.bias, statistics.mean, invstd, statistics.count
        )

    @torch.no_grad()
    def _update_running_stats(self, statistics: _Statistics) -> None:
        self.num_batches_tracked.add_(1)
        # torch's convention: momentum None means a cumulative average
        momentum = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked
        self.running_mean.mul_(1 - momentum).add_(momentum * statistics.mean)
        unbiased = statistics.variance * statistics.count / (statistics.count - 1)
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
