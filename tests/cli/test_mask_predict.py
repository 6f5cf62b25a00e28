import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sslcli.cli.app import app
from tests.text.onnx_helpers import SCORE_TOLERANCE
from tests.text.tiny_models import write_tiny_bert

runner = CliRunner()
TWO_MASKS = "She was [MASK] and [MASK] happy."


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


def cli_cache_home(factory: pytest.TempPathFactory) -> Path:
    return factory.getbasetemp() / "xdg-cache-cli"


@pytest.fixture(autouse=True)
def _onnx_cache_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """ONNX copies go to a cache of this module's, never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(cli_cache_home(tmp_path_factory)))


@pytest.fixture(scope="module")
def prepared_bert(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """What ``--prepare-onnx`` said, making the tiny BERT's ONNX copy (once a module)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cli_cache_home(tmp_path_factory)))
        result = mask_predict("--prepare-onnx", "--model", str(tiny_bert))
    assert result.exit_code == 0, result.output
    return result.stderr


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
    # with transformers: the ONNX path of the embedded model is tested in tests/text
    result = mask_predict("This is [MASK] cat.", "--json", "--gpus", "0", "--no-onnx")
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


def assert_same_answers(fast: str, slow: str) -> None:
    """The same guesses and fills, scores within the ONNX path's tolerance."""
    ours, theirs = json.loads(fast)["results"], json.loads(slow)["results"]
    for mine, reference in zip(ours, theirs, strict=True):
        assert mine["filled"] == reference["filled"]
        for guesses, expected in zip(mine["guesses"], reference["guesses"], strict=True):
            assert [g["token_id"] for g in guesses] == [g["token_id"] for g in expected]
            pairs = zip(guesses, expected, strict=True)
            assert all(abs(g["score"] - e["score"]) <= SCORE_TOLERANCE for g, e in pairs)


def test_prepare_onnx_makes_the_copy_once(prepared_bert: str, tiny_bert: Path) -> None:
    assert f"ONNX copy of {tiny_bert} made in" in prepared_bert
    assert "logits within" in prepared_bert
    again = mask_predict("--prepare-onnx", "--model", str(tiny_bert), TWO_MASKS, "--json")
    assert again.exit_code == 0 and "is ready in" in again.stderr and "made in" not in again.stderr
    slow = mask_predict(TWO_MASKS, "--model", str(tiny_bert), "--json", "--no-onnx")
    assert_same_answers(again.stdout, slow.stdout)


def test_prepare_onnx_refuses_a_hub_id() -> None:
    result = mask_predict("--prepare-onnx", "--model", "someone/tiny-bert")
    assert result.exit_code == 2 and "--prepare-onnx takes a local model" in result.stderr
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("damaged", "sentence"),
    [
        ("model.onnx", "onnxruntime cannot load the cached"),
        pytest.param("tokenizer.json", "does not parse", marks=pytest.mark.slow),  # one more export
    ],
)
def test_a_truncated_copy_is_made_again_in_one_sentence(
    damaged: str,
    sentence: str,
    prepared_bert: str,
    tiny_bert: Path,
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shutil.copytree(cli_cache_home(tmp_path_factory), tmp_path, dirs_exist_ok=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (entry,) = (tmp_path / "sslcli" / "onnx").iterdir()
    size = (entry / damaged).stat().st_size
    with (entry / damaged).open("r+b") as file:
        file.truncate(size // 2)
    fast = mask_predict(TWO_MASKS, "--model", str(tiny_bert), "--json", "--gpus", "0")
    assert fast.exit_code == 0 and "Traceback" not in fast.output
    lines = fast.stderr.strip().splitlines()
    assert sentence in lines[0] and lines[0].endswith(": making it again")
    assert lines[1].startswith("ONNX copy made, logits within")
    assert (entry / damaged).stat().st_size == size
    slow = mask_predict(TWO_MASKS, "--model", str(tiny_bert), "--json", "--no-onnx")
    assert_same_answers(fast.stdout, slow.stdout)
