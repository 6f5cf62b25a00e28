"""train-siamese on packed shards of real digits: 2 x B == 1 x 2B, exact resume, bad shards."""

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from tests.conftest import copy_digits

runner = CliRunner()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """32 real digits packed with ``sslcli pack`` into 16 shards of 2 (at their own 20 px)."""
    work = tmp_path_factory.mktemp("shards")
    digits = copy_digits(work / "digits")
    out = work / "shards"
    result = runner.invoke(
        app,
        ["pack", str(digits), "--out", str(out), "--store-size", "20", "--samples-per-shard", "2",
         "--cache-dir", str(work / "cache"), "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["images"] == 32 and report["shards"] == 16 and report["written"] == 16
    return out


def _train(data: Path, tmp_path: Path, out: str, *extra: str) -> object:
    # 4 streams of 4 shards: 2 windows of 2 shards each, so a step can start in a later window
    options = [
        "--backbone", "tiny-cnn", "--size", "16", "--batch-size", "16", "--epochs", "2",
        "--gpus", "0", "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / out),
        "--optimizer", "sgd", "--lr", "0.5", "--streams", "4", *extra,
    ]  # fmt: skip
    return runner.invoke(app, ["train-siamese", str(data), *options])


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(resolve_resume(run)).weights


def test_two_processes_on_shards_equal_one_process_with_the_same_global_batch(
    shards: Path, tmp_path: Path
) -> None:
    one_step = ("--batch-size", "32", "--epochs", "1")
    one = _train(shards / "shards.json", tmp_path, "one", *one_step)
    assert one.exit_code == 0, one.output
    two = _train(shards, tmp_path, "two", *one_step, "--cpu-procs", "2")
    assert two.exit_code == 0, two.output
    assert (tmp_path / "one" / "views.png").exists()
    config = json.loads((tmp_path / "one" / "config.json").read_text())
    assert config["streams"] == 4 and config["store_size"] == 20
    for name, tensor in _weights(tmp_path / "one").items():
        # the tolerance of the folder runs' equivalence test
        torch.testing.assert_close(_weights(tmp_path / "two")[name], tensor, rtol=1e-5, atol=2e-6)


def test_resuming_mid_epoch_on_shards_equals_an_uninterrupted_run(
    shards: Path, tmp_path: Path
) -> None:
    # 2 steps an epoch; checkpoints at steps 3 and 6 (both kept): step 3 is mid-epoch, and
    # its stream reads start in each stream's second window
    long = ("--epochs", "3", "--checkpoint-every", "3", "--online-probe")  # the probe: labels
    straight = _train(shards, tmp_path, "straight", *long)
    assert straight.exit_code == 0, straight.output
    middle = tmp_path / "straight" / "checkpoints" / "step-00000003"
    resumed = runner.invoke(
        app, ["train-siamese", "--resume", str(middle), "--out", str(tmp_path / "resumed")]
    )
    assert resumed.exit_code == 0, resumed.output
    assert load_checkpoint(resolve_resume(tmp_path / "resumed")).config["step"] == 6
    for name, tensor in _weights(tmp_path / "straight").items():
        torch.testing.assert_close(_weights(tmp_path / "resumed")[name], tensor, msg=name)


def test_a_truncated_shard_stops_the_run_with_one_clear_sentence(
    shards: Path, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for path in shards.iterdir():
        (damaged / path.name).write_bytes(path.read_bytes())
    victim = damaged / "shard-000007.tar"
    victim.write_bytes(victim.read_bytes()[:1000])
    result = _train(damaged, tmp_path, "run", "--epochs", "1")
    assert result.exit_code == 2
    assert "shard shard-000007.tar is truncated or corrupt" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (("--streams", "3", "--cpu-procs", "2"), "cannot be shared out among 2 processes"),
        (("--batch-size", "18"), "--batch-size 18 is not divisible by the 4 shard streams"),
        (("--store-size", "24"), "packed at 20 px"),
        (("--streams", "32", "--batch-size", "32"), "16 shard(s), fewer than the 32 streams"),
    ],
)
def test_bad_shard_settings_are_clear_errors(
    shards: Path, tmp_path: Path, extra: tuple, says: str
) -> None:
    result = _train(shards, tmp_path, "bad", *extra)
    assert result.exit_code == 2, result.output
    assert says in " ".join(result.stderr.split())


def test_a_run_recorded_before_shards_existed_still_resumes(tmp_path: Path) -> None:
    from sslcli.training.config import TrainingRequest, continued, resolve_config

    digits = copy_digits(tmp_path / "digits", per_class=2)
    request = TrainingRequest(
        data=str(digits), method="simclr", backbone="tiny-cnn", size=16, small_images=None,
        preset="minimal", view_changes={}, epochs=1, batch_size=8, optimizer=None,
        lr_per_256=None, weight_decay=None, warmup_epochs=None, method_options={}, seed=0,
        precision="fp32", knn_every=1, eval_dir=None, online_probe=False, checkpoint_every=0,
        stop_on_collapse=False, strict=False, cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    saved = resolve_config(request, 1).as_dict()
    for newer in ("streams", "shard_url"):
        del saved[newer]
    again = resolve_config(continued(request, saved), 1)
    assert again.streams == 8 and again.shard_url is None
