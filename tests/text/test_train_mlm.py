import json
import math
import os
import shutil
import signal
import threading
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

from sslcli.engine.checkpoint import load_checkpoint
from sslcli.engine.metrics_log import METRICS_FILE
from sslcli.engine.run_lock import LOCK_FILE
from sslcli.errors import SSLError
from sslcli.text.fill_mask import FillMask
from sslcli.text.init_model import initial_model
from sslcli.text.loading import load_masked_lm
from sslcli.text.train_mlm import MLMConfig, claimed_run, train_mlm
from tests.text.tiny_models import SAMPLE_TEXT


def config(tokenizer_folder: Path, **changes: object) -> MLMConfig:
    settings = {
        "corpus": str(SAMPLE_TEXT),
        "init": "tiny",
        "tokenizer": str(tokenizer_folder),
        "seq_len": 32,
        "batch_size": 16,
        "lr": 2e-3,
        "warmup_steps": 2,
        "steps": 6,
        "eval_every": 3,
        "checkpoint_every": 3,
        "log_every": 1,
    }
    return MLMConfig(**(settings | changes))


def run(settings: MLMConfig, out: Path, resume: Path | None = None, **options: object):
    with claimed_run(out, resume) as (run_dir, checkpoint):
        return train_mlm(settings, run_dir, checkpoint, show_progress=False, **options)


def test_a_few_steps_lower_the_loss_and_the_model_reloads(
    bert_tokenizer: Path, tmp_path: Path
) -> None:
    result = run(config(bert_tokenizer, steps=40, eval_every=40, log_every=5), tmp_path / "run")
    losses = [
        json.loads(line)["loss"]
        for line in (tmp_path / "run" / METRICS_FILE).read_text().splitlines()
    ]
    assert result.step == 40 and not result.interrupted
    assert losses[-1] < losses[0] - 0.3
    assert 0 <= result.heldout_accuracy <= 1
    _, info = AutoModelForMaskedLM.from_pretrained(tmp_path / "run", output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))
    loaded = load_masked_lm(str(tmp_path / "run"))
    (filled,) = next(FillMask(loaded.model, loaded.tokenizer).predict(["She was [MASK]."]))
    assert filled.guesses[0]


def test_resume_from_a_checkpoint_equals_an_uninterrupted_run(
    bert_tokenizer: Path, tmp_path: Path
) -> None:
    settings = config(bert_tokenizer)
    whole = run(settings, tmp_path / "whole")
    halfway = tmp_path / "whole" / "checkpoints" / "step-00000003"
    resumed = run(settings, tmp_path / "resumed", resume=halfway)
    assert whole.step == resumed.step == 6
    expected = load_file(tmp_path / "whole" / "model.safetensors")
    actual = load_file(tmp_path / "resumed" / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name, tensor in expected.items():
        assert torch.equal(tensor, actual[name]), name


def test_resuming_in_place_rewrites_the_metrics_of_the_steps_trained_again(
    bert_tokenizer: Path, tmp_path: Path
) -> None:
    settings = config(bert_tokenizer)
    run(settings, tmp_path / "whole")
    # a run killed after step 6's records were written, its step-3 checkpoint still there
    shutil.copytree(tmp_path / "whole", tmp_path / "killed")
    halfway = tmp_path / "killed" / "checkpoints" / "step-00000003"
    run(settings, tmp_path / "killed", resume=halfway)

    def records(folder: str) -> list[tuple[int, float | None]]:
        lines = (tmp_path / folder / METRICS_FILE).read_text().splitlines()
        return [(r["step"], r.get("loss")) for r in map(json.loads, lines)]

    assert records("killed") == records("whole")


def test_ctrl_c_saves_and_stops_cleanly(bert_tokenizer: Path, tmp_path: Path) -> None:
    def interrupt_soon(line: str) -> None:
        threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()

    result = run(config(bert_tokenizer, steps=100_000), tmp_path / "run", announce=interrupt_soon)
    assert result.interrupted and 0 < result.step < 100_000
    latest = (tmp_path / "run" / "checkpoints" / "latest").read_text().strip()
    assert latest == f"step-{result.step:08d}"
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_a_run_folder_is_never_overwritten(bert_tokenizer: Path, tmp_path: Path) -> None:
    settings = config(bert_tokenizer, steps=3)
    run(settings, tmp_path / "run")
    with (
        pytest.raises(SSLError, match="is not empty") as error,
        claimed_run(tmp_path / "run", None),
    ):
        pass
    assert error.value.exit_code == 2
    assert run(config(bert_tokenizer, steps=4), tmp_path / "run", tmp_path / "run").step == 4
    with pytest.raises(SSLError, match="mismatched checkpoint: lr"):
        run(config(bert_tokenizer, steps=5, lr=1e-2), tmp_path / "run", tmp_path / "run")


def test_an_encoder_without_head_gets_a_fresh_identity_head(
    tiny_bert: Path, tmp_path: Path
) -> None:
    AutoModel.from_pretrained(tiny_bert).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path)
    start = initial_model(str(tmp_path), None, seq_len=32, seed=0)
    assert "added a fresh one" in start.description
    head = start.model.cls.predictions
    assert torch.equal(head.transform.dense.weight, torch.eye(start.model.config.hidden_size))
    assert head.decoder.weight is start.model.get_input_embeddings().weight
    assert not head.bias.any()


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"steps": None}, "say how long to train"),
        ({"tokenizer": None}, "needs a tokenizer"),
        ({"mlm_probability": 1.5}, "--mlm-probability must be between 0 and 1"),
        ({"batch_size": 10_000}, "fewer than one batch"),
    ],
)
def test_bad_settings_are_refused(
    bert_tokenizer: Path, tmp_path: Path, changes: dict, message: str
) -> None:
    with pytest.raises(SSLError, match=message):
        run(config(bert_tokenizer, **changes), tmp_path / "run")


@pytest.mark.parametrize(
    ("model", "seq_len", "positions"), [("tiny_bert", 65, 64), ("tiny_roberta", 63, 62)]
)
def test_a_seq_len_beyond_the_position_table_is_refused_before_the_run_folder_is_used(
    model: str, seq_len: int, positions: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    folder = request.getfixturevalue(model)  # 64 positions; RoBERTa's start after padding
    start = {"init": str(folder), "tokenizer": None, "steps": 2}
    out = tmp_path / "run"
    message = f"--seq-len {seq_len} is longer than the model's {positions} positions"
    with pytest.raises(SSLError, match=message) as error:
        run(config(folder, seq_len=seq_len, **start), out)
    assert error.value.exit_code == 2
    assert [path.name for path in out.iterdir()] == [LOCK_FILE]
    assert run(config(folder, seq_len=positions, **start), out).step == 2


def test_a_batch_without_a_masked_token_trains_nothing_and_the_run_goes_on(
    bert_tokenizer: Path, tmp_path: Path
) -> None:
    # one block of 16 tokens a step: at seed 0, steps 2, 7 and 8 draw no masked token
    settings = config(
        bert_tokenizer, seq_len=16, batch_size=1, steps=8, eval_every=8, checkpoint_every=1
    )
    whole = run(settings, tmp_path / "whole")
    records = [json.loads(line) for line in (tmp_path / "whole" / METRICS_FILE).open()]
    losses = {record["step"]: record["loss"] for record in records if "loss" in record}
    assert whole.step == 8 and whole.loss is not None
    assert set(range(1, 9)) - losses.keys() == {2, 7, 8}
    assert all(math.isfinite(loss) for loss in losses.values())
    checkpoints = tmp_path / "whole" / "checkpoints"
    before, after = (load_checkpoint(checkpoints / f"step-{step:08d}") for step in (7, 8))
    for name, tensor in before.weights.items():
        assert torch.equal(tensor, after.weights[name]), name
    resumed = run(settings, tmp_path / "resumed", resume=checkpoints / "step-00000007")
    assert resumed.step == 8
    expected = load_file(tmp_path / "whole" / "model.safetensors")
    for name, tensor in load_file(tmp_path / "resumed" / "model.safetensors").items():
        assert torch.equal(tensor, expected[name]), name


def test_held_out_blocks_without_a_masked_token_give_no_held_out_figures(
    bert_tokenizer: Path, tmp_path: Path
) -> None:
    """One held-out block of 8 tokens masked at a rate of 1e-9: nothing to predict there, so
    no held-out loss or accuracy is reported (they were 0, as if measured)."""
    settings = config(bert_tokenizer, seq_len=8, heldout_blocks=1, mlm_probability=1e-9, steps=3)
    result = run(settings, tmp_path / "run")
    assert result.step == 3 and result.heldout_blocks == 1
    assert result.heldout_loss is None and result.heldout_accuracy is None
    records = [json.loads(line) for line in (tmp_path / "run" / METRICS_FILE).open()]
    assert not any("heldout_loss" in record or "heldout_accuracy" in record for record in records)
    assert all(set(record) - {"step"} for record in records), records
