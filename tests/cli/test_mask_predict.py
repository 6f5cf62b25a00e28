import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sslcli.cli.app import app
from tests.text.tiny_models import write_tiny_bert

runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def mask_predict(*args: str, stdin: str | None = None):
    return runner.invoke(app, ["mask-predict", *args], input=stdin)


def test_tables_on_stderr_json_on_stdout(tiny_bert: Path) -> None:
    human = mask_predict("She was [MASK] and [MASK] happy.", "--model", str(tiny_bert))
    assert human.exit_code == 0, human.output
    assert human.stdout == ""
    assert "mask 2 of 2" in human.stderr and "predicted independently" in human.stderr
    assert "filled, joint fill" in human.stderr
    result = mask_predict("She was [MASK].", "--model", str(tiny_bert), "--json", "--top-k", "3")
    payload = json.loads(result.stdout)
    (entry,) = payload["results"]
    assert len(entry["guesses"]) == 1 and len(entry["guesses"][0]) == 3
    assert {"token_id", "token", "score"} == set(entry["guesses"][0][0])
    assert entry["filled_tokens"] == [entry["guesses"][0][0]["token"]]


def test_file_and_stdin_one_text_per_line(tiny_bert: Path, tmp_path: Path) -> None:
    lines = "She was [MASK].\n\nIt is a [MASK] day.\nThe [MASK] was large.\n"
    (tmp_path / "texts.txt").write_text(lines)
    from_file = mask_predict(
        "--file",
        str(tmp_path / "texts.txt"),
        "--model",
        str(tiny_bert),
        "--json",
        "--batch-size",
        "2",
    )
    from_stdin = mask_predict(
        "-", "--model", str(tiny_bert), "--json", "--batch-size", "2", stdin=lines
    )
    assert from_file.exit_code == from_stdin.exit_code == 0
    assert len(json.loads(from_file.stdout)["results"]) == 3
    assert json.loads(from_file.stdout) == json.loads(from_stdin.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["No mask at all."], "text 1 has no mask"),
        ([""], "text 1 is empty"),
        ([], "no text given"),
        (["a [MASK]", "--file", "x.txt"], "give texts or --file, not both"),
        (["--file", "missing.txt"], "--file missing.txt does not exist"),
        (["a [MASK]", "--top-k", "0"], "--top-k must be 1 or more"),
        (["a [MASK]", "--gpus", "2"], "text commands run on one device"),
    ],
)
def test_bad_input_is_one_sentence_and_exit_2(
    tiny_bert: Path, args: list[str], message: str
) -> None:
    result = mask_predict(*args, "--model", str(tiny_bert))
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output


def test_unknown_model_and_unreachable_hub() -> None:
    unknown = mask_predict("a [MASK]", "--model", "robreta")
    assert unknown.exit_code == 2 and "unknown text model 'robreta'" in unknown.stderr
    offline = mask_predict("a [MASK]", "--model", "someone/tiny-bert")
    assert offline.exit_code == 1 and "model hub is unreachable" in offline.stderr


def test_default_model_ships_and_ranks_a_first() -> None:
    result = mask_predict("This is [MASK] cat.", "--json", "--gpus", "0")
    assert result.exit_code == 0, result.output
    (entry,) = json.loads(result.stdout)["results"]
    assert entry["guesses"][0][0]["token"] == "a"


def test_a_file_that_is_not_utf8_is_refused(tiny_bert: Path, tmp_path: Path) -> None:
    texts = tmp_path / "latin1.txt"
    texts.write_bytes("She was [MASK].\nA café [MASK].\n".encode("latin-1"))  # é is byte 21
    result = mask_predict("--file", str(texts), "--model", str(tiny_bert), "--json")
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{texts} is not UTF-8 text (byte 21)" in result.stderr
    assert "Traceback" not in result.output
