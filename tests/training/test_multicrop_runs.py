"""DINO and LeJEPA end to end on real digits: ViTs, 2 global + local crops of another size,
their settings recorded, exact resume across the schedules they keep themselves."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from tests.conftest import copy_digits
from tests.training.rewound import assert_resumes_to_the_same_weights

runner = CliRunner()


def _options(tmp_path: Path, out: str, *extra: str) -> list[str]:
    return [
        "--backbone", "vit-tiny", "--patch-size", "4", "--size", "16", "--batch-size", "16",
        "--epochs", "2", "--local-crops", "2", "--gpus", "0",
        "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / out),
        "--projector-hidden-dim", "64", "--projector-dim", "32", "--checkpoint-every", "1",
        *extra,
    ]  # fmt: skip


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return copy_digits(tmp_path / "digits")


@pytest.mark.parametrize("method", ["dino", "ibot", "lejepa"])
def test_a_multi_crop_run_records_its_views_and_resumes_exactly(
    digits: Path, tmp_path: Path, method: str
) -> None:
    options = _options(tmp_path, "run", "--method", method, "--json")
    result = runner.invoke(app, ["train-siamese", str(digits), *options])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["step"] == 4
    run = tmp_path / "run"
    config = json.loads((run / "config.json").read_text())
    assert (config["preset"], config["local_crops"], config["local_size"]) == ("dino", 2, 8)
    assert (config["patch_size"], config["optimizer"]) == (4, "adamw")
    final = load_checkpoint(resolve_resume(run))
    if method in ("dino", "ibot"):
        # the prototype count follows the data (32 images: the least, 1024), and the weight
        # decay rises from 0.04 on its cosine
        assert final.config["method_options"]["prototypes"] == 1024
        assert final.weights["center"].shape == (1, 1024)
        decays = [m["weight_decay"] for m in map(json.loads, (run / "metrics.jsonl").open())
                  if "weight_decay" in m]  # fmt: skip
        assert decays[0] > 0.04 and decays == sorted(decays)
    # the view sheet: each image, its 2 global views and its 2 local ones
    with Image.open(run / "views.png") as sheet:
        assert sheet.width == 4 + 5 * (128 + 4)
    # resume from step 3: the last step (epoch 2: teacher temperature, unfrozen last layer,
    # the centre, SIGReg's directions of step 3) is trained again to the same weights
    assert_resumes_to_the_same_weights("train-siamese", run, tmp_path / "again", 4)


def test_local_crops_are_refused_where_they_do_not_apply(digits: Path, tmp_path: Path) -> None:
    refused = runner.invoke(
        app, ["train-siamese", str(digits), *_options(tmp_path, "a", "--method", "simclr")]
    )
    assert refused.exit_code == 2
    assert "simclr takes 2 views, without local crops" in refused.stderr
    odd = _options(tmp_path, "b", "--method", "dino", "--local-size", "10")
    refused = runner.invoke(app, ["train-siamese", str(digits), *odd])
    assert refused.exit_code == 2
    assert "--local-size 10 must be a multiple of --patch-size 4" in refused.stderr
    cnn = _options(tmp_path, "c", "--method", "ibot", "--backbone", "tiny-cnn")
    cnn[2:4] = []  # without --patch-size 4
    refused = runner.invoke(app, ["train-siamese", str(digits), *cnn])
    assert refused.exit_code == 2
    assert "ibot masks the patches of a ViT, and tiny-cnn has none" in refused.stderr
    assert not any((tmp_path / name).exists() for name in "abc")


def test_a_run_from_a_vit_encoder_takes_its_patch_and_size(digits: Path, tmp_path: Path) -> None:
    """A ViT's position embeddings are made for its image size: --init takes the size and
    the patch side, and refuses another --size by name."""
    trained = runner.invoke(
        app, ["train-siamese", str(digits), *_options(tmp_path, "vit", "--method", "lejepa")]
    )
    assert trained.exit_code == 0, trained.output
    common = ["--gpus", "0", "--cache-dir", str(tmp_path / "cache"), "--batch-size", "16"]
    start = [*common, "--init", str(tmp_path / "vit"), "--epochs", "1", "--method", "lejepa"]
    refused = runner.invoke(
        app, ["train-siamese", str(digits), *start, "--size", "32", "--out", str(tmp_path / "a")]
    )
    assert refused.exit_code == 2
    assert "--size 32 does not fit --init" in refused.stderr
    taken = runner.invoke(app, ["train-siamese", str(digits), *start, "--out", str(tmp_path / "b")])
    assert taken.exit_code == 0, taken.output
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    assert (config["backbone"], config["patch_size"], config["size"]) == ("vit-tiny", 4, 16)
