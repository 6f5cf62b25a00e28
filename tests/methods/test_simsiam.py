import copy
import json
import math
from pathlib import Path

import pytest
import torch

from sslcli.engine.metrics_log import METRICS_FILE
from sslcli.engine.optim import make_optimizer
from sslcli.engine.runtime import make_runtime
from sslcli.engine.trainer import Schedule, Trainer
from sslcli.methods.simsiam import SimSiam, negative_cosine
from sslcli.models.tiny_cnn import TinyCNN
from sslcli.training.observers import CollapseWatch
from tests.methods.training import assert_close_by_name, fit_with_trainer, noisy_views


def test_negative_cosine_and_its_stop_gradient() -> None:
    p = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    z = torch.tensor([[1.0, 1.0], [0.0, -1.0]], requires_grad=True)
    loss = negative_cosine(p, z)
    assert loss.item() == pytest.approx(-(2**-0.5 - 1) / 2)
    loss.backward()
    assert z.grad is None and p.grad is not None


def _final_metrics(tmp_path: Path, predictor: bool) -> dict:
    torch.manual_seed(0)
    method = SimSiam(
        TinyCNN(width=8), hidden_dim=64, projection_dim=64, predictor_dim=16, predictor=predictor
    )
    schedule = Schedule(steps_per_epoch=10, epochs=4, warmup_steps=0, base_lr=0.2,
                        global_batch=32, checkpoint_every=1000, log_every=5)  # fmt: skip
    trainer = Trainer(
        make_runtime("cpu", "fp32", 0), method,
        lambda model: make_optimizer("sgd", model, 0.2, 1e-4), schedule, tmp_path, {}, (),
        [CollapseWatch(is_main=True, stop_on_collapse=False)],
    )  # fmt: skip

    def views(step: int) -> list[torch.Tensor]:
        images = torch.rand(32, 3, 12, 12, generator=torch.Generator().manual_seed(step))
        return [images + 0.1 * torch.randn_like(images), images.flip(-1)]

    trainer.fit(views)
    return json.loads((tmp_path / METRICS_FILE).read_text().splitlines()[-1])


def test_without_its_predictor_simsiam_finds_the_trivial_solution(tmp_path: Path) -> None:
    """The predictor is what keeps SimSiam's loss from reaching -1 at once."""
    with_predictor = _final_metrics(tmp_path / "with", predictor=True)
    without = _final_metrics(tmp_path / "without", predictor=False)
    assert without["loss"] < -0.8 < with_predictor["loss"]
    assert without["effective_rank"] < with_predictor["effective_rank"]


def _official_training(
    method: SimSiam, views: list[torch.Tensor], init_lr: float, weight_decay: float, steps: int
) -> dict[str, torch.Tensor]:
    """facebookresearch/simsiam main_simsiam.py with ``--fix-pred-lr`` (its README's
    command), one step per epoch: SGD with momentum 0.9 and ``weight_decay`` on EVERY
    parameter, the encoder's in a group at init_lr x 0.5 (1 + cos(pi epoch / epochs)), the
    predictor's (``fix_lr``) at init_lr throughout (``adjust_learning_rate``)."""
    encoder = [p for name, p in method.named_parameters() if not name.startswith("predictor.")]
    groups = [
        {"params": encoder, "fix_lr": False},
        {"params": list(method.predictor.parameters()), "fix_lr": True},
    ]
    optimizer = torch.optim.SGD(groups, init_lr, momentum=0.9, weight_decay=weight_decay)
    for epoch in range(steps):
        cur_lr = init_lr * 0.5 * (1.0 + math.cos(math.pi * epoch / steps))
        for group in optimizer.param_groups:
            group["lr"] = init_lr if group["fix_lr"] else cur_lr
        loss = method(views).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {name: p.detach() for name, p in method.named_parameters()}


@pytest.mark.parametrize(
    ("steps", "weight_decay"),
    [(1, 0.05), (2, 0.0)],
    # one step: the learning rates agree, the weight decay of biases and BatchNorm shows;
    # two without decay: the predictor keeps the base rate while the cosine halves the others'
    ids=["every-parameter-decays", "the-predictor-keeps-the-base-lr"],
)
def test_the_trainer_trains_simsiam_as_the_official_recipe(
    tmp_path: Path, steps: int, weight_decay: float
) -> None:
    torch.manual_seed(0)
    method = SimSiam(TinyCNN(width=4), hidden_dim=16, projection_dim=16, predictor_dim=8)
    views = noisy_views(batch=32)
    expected = _official_training(copy.deepcopy(method), views, 0.5, weight_decay, steps)
    fit_with_trainer(method, "sgd", 0.5, weight_decay, views, tmp_path, steps)
    assert_close_by_name(dict(method.named_parameters()), expected)
