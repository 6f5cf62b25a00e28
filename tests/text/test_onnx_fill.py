"""The ONNX fast path of fill-mask against the torch path and transformers' pipeline."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import pipeline

from sslcli.errors import SSLError
from sslcli.text.backends import JsonTokens, ModelFacts, TransformersTokens, facts_of
from sslcli.text.device import asks_for_cpu
from sslcli.text.fill_mask import FillMask, MaskFiller
from sslcli.text.loading import load_masked_lm
from sslcli.text.models import DEFAULT_TEXT_MODEL, resolve_text_model
from sslcli.text.onnx_cache import (
    FACTS_KEY,
    TOLERANCE,
    entry_for,
    fast_fill_mask,
    prepare,
    read_check,
)
from sslcli.text.onnx_export import make_entry
from tests.conftest import REPO
from tests.text.onnx_helpers import (
    SCORE_TOLERANCE,
    FirstUse,
    assert_same_results,
    read_metadata,
    shared_cache_home,
)

EMBEDDED = Path(resolve_text_model(DEFAULT_TEXT_MODEL).location)
TEXTS = [
    "This is [MASK] cat.",
    "It is a truth universally [MASK], that a single man must be in want of a wife.",
    "She was [MASK] and [MASK] happy.",
    "[MASK] Bennet was among the [MASK] of those who [MASK] on Mr. Bingley.",
]
PADDING = "The house stood at the end of a long lane, and nobody had lived in it for years. "
LONG_TEXTS = [PADDING * 40 + "She was [MASK] and [MASK] happy. " + PADDING * 40]
"""Longer than either model reads (512 and 64 tokens): cut to a window around the masks."""


def predict(fill: MaskFiller, texts: list[str], top_k: int = 7, batch: int = 3) -> list:
    return [result for chunk in fill.predict(texts, top_k, batch) for result in chunk]


@pytest.fixture(scope="module")
def embedded_torch() -> FillMask:
    loaded = load_masked_lm(DEFAULT_TEXT_MODEL)
    return FillMask(loaded.model, loaded.tokenizer)


def test_first_use_makes_the_copy_and_the_next_reuses_it(first_use: FirstUse) -> None:
    making, made = first_use.notes
    assert making.startswith(f"making an ONNX copy of {DEFAULT_TEXT_MODEL} for fast starts")
    assert made.startswith("ONNX copy made, logits within")
    entry = entry_for(resolve_text_model(DEFAULT_TEXT_MODEL))
    check = read_check(entry)
    assert check is not None and check.refused is None and check.difference <= TOLERANCE
    written = entry.onnx.stat().st_mtime_ns
    notes: list[str] = []
    assert fast_fill_mask(DEFAULT_TEXT_MODEL, notes.append) is not None
    assert fast_fill_mask(str(EMBEDDED), notes.append) is not None  # the folder: same entry
    assert notes == [] and entry.onnx.stat().st_mtime_ns == written


def test_embedded_copy_equals_torch_and_the_pipeline(
    first_use: FirstUse, embedded_torch: FillMask
) -> None:
    fast = predict(first_use.filler, TEXTS + LONG_TEXTS)
    assert fast[-1].truncated
    assert_same_results(fast, predict(embedded_torch, TEXTS + LONG_TEXTS))
    reference = pipeline(
        "fill-mask", model=embedded_torch.model, tokenizer=embedded_torch.tokenizer
    )
    for result, text in zip(fast, TEXTS, strict=False):
        expected = reference(text, top_k=7)
        expected = [expected] if isinstance(expected[0], dict) else expected
        for guesses, rows in zip(result.guesses, expected, strict=True):
            assert [(g.token_id, g.token) for g in guesses] == [
                (row["token"], row["token_str"]) for row in rows
            ]
            for guess, row in zip(guesses, rows, strict=True):
                assert abs(guess.score - row["score"]) <= SCORE_TOLERANCE


def test_embedded_tokenizer_and_facts_agree_with_transformers(
    first_use: FirstUse, embedded_torch: FillMask
) -> None:
    tokenizer = embedded_torch.tokenizer
    entry = entry_for(resolve_text_model(DEFAULT_TEXT_MODEL))
    facts = ModelFacts.from_json(read_metadata(entry.onnx)[FACTS_KEY])
    assert facts == facts_of(embedded_torch.model, tokenizer) == first_use.filler.facts
    assert set(facts.special_ids) == set(tokenizer.all_special_ids)
    assert facts.mask_id == tokenizer.mask_token_id and facts.max_tokens == 512
    reference = TransformersTokens(tokenizer)
    texts = [*TEXTS, "Don't split naïve cafés, 東京 or e-mail; [MASK]!"]
    every_token = range(facts.vocab_size)
    for tokens in (JsonTokens(entry.tokenizer), JsonTokens(EMBEDDED / "tokenizer.json")):
        assert tokens.encode(texts) == reference.encode(texts)
        assert [tokens.decode([i]) for i in every_token] == [
            reference.decode([i]) for i in every_token
        ]


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_roberta"])
def test_tiny_copies_equal_torch(
    model: str, prepared_tiny: dict[str, Path], request: pytest.FixtureRequest
) -> None:
    """WordPiece and byte-level BPE (``<mask>``, a position table after the padding index),
    windows of 64 and 60 tokens."""
    folder = str(request.getfixturevalue(model))
    fast = fast_fill_mask(folder, pytest.fail)
    assert fast is not None
    loaded = load_masked_lm(folder)
    torch_results = predict(FillMask(loaded.model, loaded.tokenizer), TEXTS + LONG_TEXTS, batch=2)
    assert_same_results(predict(fast, TEXTS + LONG_TEXTS, batch=2), torch_results)


def test_fast_path_imports_neither_torch_nor_transformers(
    first_use: FirstUse, embedded_torch: FillMask, tmp_path_factory: pytest.TempPathFactory
) -> None:
    script = (
        "import json, sys\n"
        "from sslcli.cli.app import main\n"
        "sys.argv = ['sslcli', *sys.argv[1:]]\n"
        "try:\n    main()\n"
        "except SystemExit as exit:\n    code = exit.code\n"
        "heavy = [name for name in ('torch', 'transformers') if name in sys.modules]\n"
        "print(json.dumps({'code': code, 'heavy': heavy}), file=sys.stderr)\n"
    )
    environment = {**os.environ, "XDG_CACHE_HOME": str(shared_cache_home(tmp_path_factory))}
    environment["PYTHONPATH"] = str(REPO)
    command = [sys.executable, "-c", script, "mask-predict", *TEXTS, "--json", "--top-k", "7"]
    done = subprocess.run(
        [*command, "--gpus", "0"], capture_output=True, text=True, env=environment, timeout=120
    )
    assert json.loads(done.stderr.strip().splitlines()[-1]) == {"code": 0, "heavy": []}
    rows = json.loads(done.stdout)["results"]
    for row, expected in zip(rows, predict(embedded_torch, TEXTS), strict=True):
        assert row["filled"] == expected.filled
        for guesses, reference in zip(row["guesses"], expected.guesses, strict=True):
            assert [g["token"] for g in guesses] == [g.token for g in reference]
            scores = zip(guesses, reference, strict=True)
            assert all(abs(g["score"] - r.score) <= SCORE_TOLERANCE for g, r in scores)


def test_a_copy_failing_its_check_is_refused_and_remembered(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    entry = entry_for(resolve_text_model(str(tiny_bert)))
    check = make_entry(str(tiny_bert), entry, tolerance=-1.0)  # a bound no export meets
    assert check.refused is not None and "its logits differ from torch's by" in check.refused
    assert not entry.onnx.exists() and read_check(entry) == check
    notes: list[str] = []
    assert fast_fill_mask(str(tiny_bert), notes.append) is None and notes == []


def test_only_local_models_take_the_fast_path(
    tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert fast_fill_mask(str(tiny_bert), pytest.fail) is None  # a folder: made on request
    assert fast_fill_mask("someone/tiny-bert", pytest.fail) is None
    with pytest.raises(SSLError, match="--prepare-onnx takes a local model") as error:
        prepare("someone/tiny-bert", pytest.fail)
    assert error.value.exit_code == 2
    assert not (tmp_path / "sslcli").exists()


@pytest.mark.parametrize(
    ("gpus", "device", "visible", "cpu"),
    [
        (None, "cpu", None, True),
        (1, "cpu", None, True),
        (None, "cuda", "", False),
        (0, None, None, True),
        (1, None, "", False),
        (None, None, "", True),  # CUDA_VISIBLE_DEVICES hides every GPU
        (None, None, "-1", True),
    ],
)
def test_the_cpu_is_told_without_torch(
    gpus: int | None,
    device: str | None,
    visible: str | None,
    cpu: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    assert asks_for_cpu(gpus, device) is cpu
