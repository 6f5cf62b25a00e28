import json
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
