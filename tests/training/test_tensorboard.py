"""train-siamese --tensorboard: the event files hold the metrics.jsonl scalars, the views
image and the projector's embeddings; embed --map adds its map to them."""

import json
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.engine.tensorboard import tag
from tests.conftest import copy_digits

runner = CliRunner()


def _events(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"images": 0})
    events.Reload()
    return events


@pytest.fixture(scope="module")
def board_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("board")
    digits = copy_digits(work / "digits")
    options = [
        "--backbone", "tiny-cnn", "--size", "16", "--batch-size", "16", "--epochs", "2",
        "--gpus", "0", "--cache-dir", str(work / "cache"), "--out", str(work / "run"),
        "--optimizer", "sgd", "--lr", "0.5", "--projector-hidden-dim", "64",
        "--projector-dim", "32", "--knn-every", "1", "--tensorboard",
    ]  # fmt: skip
    result = runner.invoke(app, ["train-siamese", str(digits), *options])
    assert result.exit_code == 0, result.output
    return work / "run"


def test_the_event_files_hold_every_scalar_of_the_metrics_log(board_run: Path) -> None:
    events = _events(board_run)
    scalars = set(events.Tags()["scalars"])
    records = [json.loads(line) for line in (board_run / "metrics.jsonl").open()]
    for record in records:
        for name, value in record.items():
            if name in ("step", "epoch"):
                continue
            points = {event.step: event.value for event in events.Scalars(tag(name))}
            assert points[record["step"]] == pytest.approx(value, rel=1e-6), name
    expected = {"train/loss", "train/lr", "train/images_per_s", "train/data_wait"}
    expected |= {"eval/knn_accuracy", "eval/knn_random_init", "collapse/effective_rank"}
    assert expected <= scalars


def test_the_event_files_hold_the_views_and_the_projectors_embeddings(board_run: Path) -> None:
    from PIL import Image

    events = _events(board_run)
    (views,) = events.Images("views")
    with Image.open(board_run / "views.png") as sheet:
        assert (views.width, views.height) == sheet.size
    (projector,) = [p for p in (board_run / "tensorboard").rglob("tensors.tsv")]
    rows = projector.read_text().splitlines()
    labels = (projector.parent / "metadata.tsv").read_text().split()
    assert len(rows) == len(labels) == 32 and len(rows[0].split("\t")) == 128
    assert sorted(set(labels)) == ["0", "1", "4", "7"]  # the class folders' names
    assert (projector.parent / "sprite.png").is_file()


def test_embed_map_goes_to_the_runs_event_files(board_run: Path, tmp_path: Path) -> None:
    digits = copy_digits(tmp_path / "digits", "01", 3)
    out, picture = tmp_path / "e.npy", tmp_path / "map.png"
    arguments = ["embed", str(digits), "-m", str(board_run), "-o", str(out), "--map", str(picture)]
    result = runner.invoke(app, [*arguments, "--gpus", "0", "--cache-dir", str(tmp_path / "c")])
    assert result.exit_code == 0, result.output
    assert "embedding_map" in _events(board_run).Tags()["images"]


def test_tensorboard_is_not_written_unless_asked(trained_run: Path) -> None:
    assert not (trained_run / "tensorboard").exists()
