"""bf16 autocast against fp32 on one fixed batch, for every method: the loss and the gradients.

bf16 keeps 8 significant bits (7 stored and the implicit one), so each rounding is off by up
to 2^-8 = 0.4% of the value. The losses themselves are computed in fp32 from bf16
activations, so a loss is off by a few roundings, not by their sum over the network:
LOSS_SHARE is 2e-2, 5 of them (measured: at most 5.4e-3 over 6 batches, every method and
both BatchNorms). The gradients pass back through ~10 bf16 layers and every BatchNorm's
backward, whose input gradient is a small difference of large terms on these nearly
collapsed embeddings, so their direction is what bf16 keeps, and not closely: measured over
the same 96 cases, the whole gradient within cos 0.96 of fp32's, every tensor holding >= 1%
of it within 0.936 (fp16 autocast, with 11 bits, gives 0.998). The bounds sit under those;
they catch a step that never left fp32 and gross losses of precision, not the last bit.

Both BatchNorms are compared: torch's (one process) and GlobalBatchNorm (every distributed
run's), whose docstring promises float32 arithmetic whatever the input's dtype.
"""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from sslcli.engine.batchnorm import synchronise_batchnorm
from sslcli.engine.runtime import make_runtime
from sslcli.methods import METHODS
from tests.methods.builders import small_method

LOSS_SHARE = 2e-2
"""Of the loss's scale, max(|loss|, 1): SimSiam's loss is a mean cosine, in [-1, 1] near 0."""
GRADIENT_COSINE = 0.95
TENSOR_COSINE = 0.9
TENSOR_SHARE = 1e-2
"""Tensors holding less of the gradient's norm are left out of the per-tensor bound: biases
followed by a BatchNorm or a standardisation have a gradient of 0 up to rounding."""

CASES = [(name, {}) for name in METHODS.names() if name != "latent"]
CASES += [("latent", {"target": "online"}), ("latent", {"target": "ema"})]


def test_every_method_is_compared_latent_with_both_targets() -> None:
    assert {name for name, _ in CASES} == set(METHODS.names())
    assert {options.get("target") for name, options in CASES if name == "latent"} == {
        "online",
        "ema",
    }


def _loss_and_gradients(
    method: torch.nn.Module, views: list[torch.Tensor], precision: str
) -> tuple[float, dict[str, torch.Tensor]]:
    method = copy.deepcopy(method)  # the same weights, BatchNorm statistics and targets
    method.train()
    with make_runtime("cpu", precision, seed=0).autocast():  # as the trainer runs a step
        output = method(views)
    output.loss.backward()
    assert output.loss.dtype == torch.float32
    gradients = {name: p.grad for name, p in method.named_parameters() if p.requires_grad}
    assert all(g is not None and torch.isfinite(g).all() for g in gradients.values())
    return output.loss.item(), gradients


@pytest.mark.parametrize("batchnorm", ["torch", "global"])
@pytest.mark.parametrize(
    ("name", "options"), CASES, ids=[f"{n}-{o['target']}" if o else n for n, o in CASES]
)
def test_bf16_autocast_gives_the_fp32_loss_and_gradients_to_bf16_precision(
    name: str, options: dict, batchnorm: str
) -> None:
    torch.manual_seed(0)
    method = small_method(name, **options)
    if batchnorm == "global":  # on one process: BatchNorm, the collectives are identities
        method = synchronise_batchnorm(method, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(16, 3, 16, 16, generator=generator)
    views = [images + 0.1 * torch.randn(images.shape, generator=generator), images.flip(3)]

    loss32, gradients32 = _loss_and_gradients(method, views, "fp32")
    loss16, gradients16 = _loss_and_gradients(method, views, "bf16")

    whole32 = torch.cat([g.flatten() for g in gradients32.values()])
    whole16 = torch.cat([gradients16[key].flatten() for key in gradients32])
    assert not torch.equal(whole16, whole32), "the bf16 step ran in fp32: no autocast"
    assert abs(loss16 - loss32) <= LOSS_SHARE * max(abs(loss32), 1.0), (loss16, loss32)
    cosine = F.cosine_similarity(whole16, whole32, dim=0).item()
    assert cosine > GRADIENT_COSINE, f"the whole gradient: cos {cosine:.4f}"
    for key, gradient in gradients32.items():
        if gradient.norm() < TENSOR_SHARE * whole32.norm():
            continue
        cosine = F.cosine_similarity(gradients16[key].flatten(), gradient.flatten(), dim=0)
        assert cosine > TENSOR_COSINE, f"{key}: cos {cosine:.4f}"
