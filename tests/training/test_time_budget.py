"""train-siamese --time-budget: the run ends on time with its schedule complete, records its
plan, and a resumed run keeps it."""

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sslcli.cli.app import app
from sslcli.engine.optim import warmup_cosine
from sslcli.errors import SSLError
from sslcli.training.config import TrainingRequest, continued
from tests.conftest import copy_digits

runner = CliRunner()
BUDGET = 12.0


def test_a_budgeted_run_ends_near_its_budget_with_the_schedule_done(
    tmp_path: Path,
) -> None:
    digits = copy_digits(tmp_path / "digits")
    run = tmp_path / "run"
    options = [
        "--backbone", "tiny-cnn", "--size", "16", "--batch-size", "16", "--epochs", "10",
        "--gpus", "0", "--cache-dir", str(tmp_path / "cache"), "--out", str(run),
        "--optimizer", "sgd", "--lr", "0.5", "--projector-hidden-dim", "64",
        "--projector-dim", "32", "--time-budget", f"{BUDGET:g}s", "--json",
    ]  # fmt: skip
    started = time.perf_counter()
    result = runner.invoke(app, ["train-siamese", str(digits), *options])
    took = time.perf_counter() - started
    assert result.exit_code == 0, result.output
    # a 2-minute run ended within 2% of its budget (benchmarks/RESULTS.md). Here, with 20-30
    # ms steps, the pace of a 2-core machine swings by up to half within seconds (394-798
    # images/s in one quiet run; in two CI runs it fell from about 730 to 450 after the plan,
    # ending at 14.1 and 15.7 s): the end is checked against that, the schedule exactly below
    assert 0.5 * BUDGET <= took <= 2 * BUDGET, took
    config = json.loads((run / "config.json").read_text())
    steps = config["steps"]
    assert config["time_budget"] == BUDGET and config["epochs"] == -(-steps // 2)
    assert json.loads(result.stdout)["step"] == steps
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    first, again = (record["planned_steps"] for record in records if "planned_steps" in record)
    assert again == steps and records[0]["step_seconds"] > 0
    logged = [record for record in records if "lr" in record]
    warmup = round(first / 10)  # --epochs 10 gives 1 warm-up epoch: a tenth of the run
    assert logged[-1]["step"] == steps
    assert logged[-1]["lr"] == pytest.approx(warmup_cosine(steps - 1, steps, warmup, 0.5 / 16))
    assert records[-1]["step"] == steps and "knn_accuracy" in records[-1]  # the last evaluation


def _request(**changes: object) -> TrainingRequest:
    fields = {
        "data": "d", "method": "simclr", "backbone": "tiny-cnn", "size": 16,
        "small_images": None, "preset": None, "view_changes": {}, "epochs": 100,
        "batch_size": 16, "optimizer": None, "lr_per_256": None, "weight_decay": None,
        "warmup_epochs": None, "method_options": {}, "seed": 0, "precision": "auto",
        "knn_every": 5, "eval_dir": None, "online_probe": False, "checkpoint_every": 0,
        "stop_on_collapse": False, "strict": False, "cache_dir": None,
    }  # fmt: skip
    return replace(TrainingRequest(**fields), **changes)


def test_a_resumed_run_keeps_its_planned_steps_unless_re_planned_by_epochs() -> None:
    saved = {name: value for name, value in vars(_request()).items() if name != "explicit"}
    saved |= {"time_budget": 60.0, "steps": 345, "epochs": 4}
    kept = continued(_request(), saved)
    assert (kept.steps, kept.time_budget, kept.epochs) == (345, 60.0, 4)
    by_epochs = continued(_request(epochs=9, explicit=frozenset({"epochs"})), saved)
    assert (by_epochs.steps, by_epochs.time_budget, by_epochs.epochs) == (None, None, 9)
    with pytest.raises(SSLError, match="keeps the steps its time budget planned"):
        continued(_request(time_budget=30.0, explicit=frozenset({"time_budget"})), saved)
