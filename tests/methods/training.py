"""A few SGD steps of a method on two noisy views of random images: the losses it saw."""

import torch

from sslcli.methods.base import SSLMethod


def losses_over_steps(method: SSLMethod, lr: float, steps: int = 15) -> list[float]:
    optimizer = torch.optim.SGD([p for p in method.parameters() if p.requires_grad], lr=lr)
    images = torch.rand(16, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    views = [images + 0.05 * torch.randn_like(images), images + 0.05 * torch.randn_like(images)]
    losses = []
    for step in range(steps):
        output = method(views)
        losses.append(output.loss.item())
        output.loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        method.after_step((step + 1) / steps)
    return losses
