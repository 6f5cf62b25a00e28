"""Every method trains under bf16 autocast (the GPU default), here on the CPU."""

import pytest
import torch

from sslcli.engine.runtime import make_runtime
from sslcli.methods import METHODS
from tests.methods.builders import small_method


@pytest.mark.parametrize("name", METHODS.names())
def test_a_training_step_under_bf16_autocast_gives_a_finite_fp32_loss_and_gradients(
    name: str,
) -> None:
    runtime = make_runtime("cpu", "bf16", seed=0)
    method = small_method(name)
    images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    views = [images, images.flip(3)]
    with runtime.autocast():
        output = method(views)
    output.loss.backward()
    assert output.loss.dtype == torch.float32
    assert torch.isfinite(output.loss)
    trainable = [p for p in method.backbone.parameters() if p.requires_grad]
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in trainable)
