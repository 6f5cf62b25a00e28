"""The collapse monitor catches a method that can collapse (no negatives, no predictor, no
regulariser), and --stop-on-collapse stops it with a checkpoint."""

import json
from pathlib import Path

import pytest
import torch

from sslcli.engine.contract import StepOutput
from sslcli.engine.metrics_log import METRICS_FILE
from sslcli.engine.optim import make_optimizer
from sslcli.engine.runtime import make_runtime
from sslcli.engine.trainer import Schedule, Trainer
from sslcli.errors import SSLError
from sslcli.methods.base import SSLMethod, TrainingDefaults
from sslcli.models.tiny_cnn import TinyCNN
from sslcli.training.observers import CollapseWatch


class PullTogether(SSLMethod):
    """Only pulls the two views together: the trivial solution is one point for everything."""

    defaults = TrainingDefaults("sgd", 1.0, 0.0)

    def __init__(self) -> None:
        super().__init__(TinyCNN(width=8))

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        features = self.backbone(torch.cat(views))
        f1, f2 = features.chunk(2)
        return StepOutput((f1 - f2).pow(2).mean(), f1.detach())


def _trainer(tmp_path: Path, stop: bool) -> Trainer:
    torch.manual_seed(0)
    schedule = Schedule(steps_per_epoch=10, epochs=6, warmup_steps=0, base_lr=0.5,
                        global_batch=32, checkpoint_every=1000, log_every=2)  # fmt: skip
    return Trainer(
        make_runtime("cpu", "fp32", 0),
        PullTogether(),
        lambda model: make_optimizer("sgd", model, 0.5, 0.0),
        schedule,
        tmp_path,
        {},
        (),
        [CollapseWatch(is_main=True, stop_on_collapse=stop)],
    )


def _views(step: int) -> list[torch.Tensor]:
    images = torch.rand(32, 3, 12, 12, generator=torch.Generator().manual_seed(step))
    return [images, images.flip(-1)]


def test_the_monitor_logs_collapse_metrics_and_warns(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    _trainer(tmp_path, stop=False).fit(_views)
    records = [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]
    first, last = records[0], records[-1]
    assert last["embedding_std"] < 0.2 * first["embedding_std"]
    assert last["effective_rank"] < first["effective_rank"]
    assert "the embeddings are collapsing" in capsys.readouterr().err


def test_stop_on_collapse_stops_with_a_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(SSLError, match="the embeddings collapsed") as raised:
        _trainer(tmp_path, stop=True).fit(_views)
    assert raised.value.exit_code == 1
    assert (tmp_path / "checkpoints" / "latest").is_file()
