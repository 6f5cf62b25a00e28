import json
from pathlib import Path

from typer.testing import CliRunner

from sslcli.cli.app import app
from tests.text.tiny_models import SAMPLE_TEXT, write_bert_tokenizer

runner = CliRunner()


def test_train_then_predict_with_the_run_folder(tmp_path: Path) -> None:
    tokenizer = write_bert_tokenizer(tmp_path / "tokenizer")
    out = tmp_path / "run"
    args = [
        "train-mlm",
        str(SAMPLE_TEXT),
        "--init",
        "tiny",
        "--tokenizer",
        str(tokenizer),
        "--out",
        str(out),
        "--steps",
        "4",
        "--seq-len",
        "32",
        "--batch-size",
        "8",
        "--eval-every",
        "2",
        "--gpus",
        "0",
    ]
    trained = runner.invoke(app, [*args, "--json"])
    assert trained.exit_code == 0, trained.output
    report = json.loads(trained.stdout)
    assert report["step"] == 4 and not report["interrupted"] and report["model"] == str(out)
    assert "from scratch" in report["start"]
    predicted = runner.invoke(app, ["mask-predict", "She was [MASK].", "--model", str(out)])
    assert predicted.exit_code == 0, predicted.output
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "is not empty" in again.stderr


def test_missing_corpus_and_length(tmp_path: Path) -> None:
    missing = runner.invoke(
        app,
        [
            "train-mlm",
            str(tmp_path / "none"),
            "--init",
            "tiny",
            "--tokenizer",
            "x",
            "--out",
            str(tmp_path / "r"),
            "--steps",
            "1",
        ],
    )
    assert missing.exit_code == 2 and "does not exist" in missing.stderr
    endless = runner.invoke(app, ["train-mlm", str(SAMPLE_TEXT), "--out", str(tmp_path / "r")])
    assert endless.exit_code == 2 and "say how long to train" in endless.stderr


def test_a_stopped_run_prints_the_command_that_continues_it(tmp_path: Path) -> None:
    tokenizer = write_bert_tokenizer(tmp_path / "tokenizer")
    out = tmp_path / "run"
    args = [
        *(str(SAMPLE_TEXT), "--init", "tiny", "--tokenizer", str(tokenizer), "--gpus", "0"),
        *("--seq-len", "32", "--batch-size", "8", "--lr", "0.002", "--whole-word"),
    ]
    stopped = runner.invoke(
        app, ["train-mlm", *args, "--out", str(out), "--steps", "9", "--minutes", "0.0001"]
    )
    assert stopped.exit_code == 0, stopped.output
    hint = " ".join(stopped.stderr.split()).split("continue with: ")[1]
    assert hint.startswith(f"sslcli train-mlm {SAMPLE_TEXT} --resume {out}")
    continued = runner.invoke(app, hint.replace("--minutes 0.0001", "").split()[1:])
    assert continued.exit_code == 0, continued.output
    assert json.loads((out / "result.json").read_text())["step"] == 9


def test_a_run_folder_in_use_is_refused(tmp_path: Path) -> None:
    from sslcli.engine.run_lock import run_folder_lock

    tokenizer = write_bert_tokenizer(tmp_path / "tokenizer")
    out = tmp_path / "run"
    args = ["train-mlm", str(SAMPLE_TEXT), "--init", "tiny", "--tokenizer", str(tokenizer)]
    args += ["--out", str(out), "--steps", "2", "--seq-len", "32", "--batch-size", "8"]
    with run_folder_lock(out):  # as another run, still training, holds it
        busy = runner.invoke(app, [*args, "--gpus", "0"])
    assert busy.exit_code == 2 and "another sslcli run is training in" in busy.stderr
    # its lock file alone does not make the folder "not empty"
    assert runner.invoke(app, [*args, "--gpus", "0"]).exit_code == 0
