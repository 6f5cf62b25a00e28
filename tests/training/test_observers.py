"""The collapse monitor catches a method that can collapse (no negatives, no predictor, no
regulariser), and --stop-on-collapse stops it with a checkpoint."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from sslcli.data.cache import decode_once
from sslcli.data.folder import scan_image_folder
from sslcli.engine.contract import StepOutput
from sslcli.engine.metrics_log import METRICS_FILE
from sslcli.engine.optim import make_optimizer
from sslcli.engine.runtime import make_runtime
from sslcli.engine.trainer import Schedule, Trainer
from sslcli.errors import SSLError
from sslcli.methods.base import SSLMethod, TrainingDefaults
from sslcli.methods.vicreg import covariance_term, variance_term
from sslcli.models.tiny_cnn import TinyCNN
from sslcli.training.observers import CollapseWatch
from tests.conftest import SAMPLE_DATA


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


class InvarianceAndVariance(SSLMethod):
    """VICReg's invariance and variance terms on the backbone's features, with or without
    its covariance term: without it the features keep their spread (std) but fall into a few
    dimensions, the dimensional collapse VICReg's paper describes (its section 4.5)."""

    defaults = TrainingDefaults("adamw", 0.003, 1e-4)

    def __init__(self, covariance: bool) -> None:
        super().__init__(TinyCNN(width=16))
        self.covariance = covariance

    def forward(self, views: list[torch.Tensor]) -> StepOutput:
        f1, f2 = (self.backbone(view) for view in views)
        loss = 25 * (f1 - f2).pow(2).mean() + 25 * (variance_term(f1) + variance_term(f2))
        if self.covariance:
            loss = loss + covariance_term(f1) + covariance_term(f2)
        return StepOutput(loss, f1.detach())


@pytest.fixture(scope="module")
def digit_pixels(tmp_path_factory: pytest.TempPathFactory) -> torch.Tensor:
    folder = scan_image_folder(SAMPLE_DATA / "digits")
    cache = tmp_path_factory.mktemp("cache")
    pixels = decode_once(folder.paths, 16, cache).pixels
    return torch.from_numpy(np.array(pixels)).permute(0, 3, 1, 2).float() / 255


def _fit_dimensions(tmp_path: Path, pixels: torch.Tensor, covariance: bool) -> list[dict]:
    torch.manual_seed(0)

    def views(step: int) -> list[torch.Tensor]:
        generator = torch.Generator().manual_seed(step)
        batch = pixels[torch.randperm(len(pixels), generator=generator)[:64]]
        noise = [0.1 * torch.randn(batch.shape, generator=generator) for _ in range(2)]
        return [batch + noise[0], batch.flip(-1) + noise[1]]

    schedule = Schedule(steps_per_epoch=20, epochs=4, warmup_steps=0, base_lr=0.003,
                        global_batch=64, checkpoint_every=10**6, log_every=10)  # fmt: skip
    Trainer(
        make_runtime("cpu", "fp32", 0),
        InvarianceAndVariance(covariance),
        lambda model: make_optimizer("adamw", model, 0.003, 1e-4),
        schedule,
        tmp_path,
        {},
        (),
        [CollapseWatch(is_main=True, stop_on_collapse=False)],
    ).fit(views)
    return [json.loads(line) for line in (tmp_path / METRICS_FILE).read_text().splitlines()]


def test_a_dimensional_collapse_is_flagged_though_the_std_stays_up(
    tmp_path: Path, digit_pixels: torch.Tensor, capsys: pytest.CaptureFixture
) -> None:
    records = _fit_dimensions(tmp_path, digit_pixels, covariance=False)
    last = records[-1]
    healthy_std = 1 / math.sqrt(64)
    assert last["embedding_std"] > 0.2 * healthy_std  # the std-based check cannot see it
    assert last["effective_rank"] < 4
    assert "collapsing into few dimensions" in capsys.readouterr().err


def test_a_healthy_run_that_loses_some_rank_is_not_flagged(
    tmp_path: Path, digit_pixels: torch.Tensor, capsys: pytest.CaptureFixture
) -> None:
    records = _fit_dimensions(tmp_path, digit_pixels, covariance=True)
    assert min(r["effective_rank"] for r in records) < 15  # it does fall from about 26
    assert "collapsing" not in capsys.readouterr().err
