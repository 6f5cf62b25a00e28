from pathlib import Path

import pytest
import torch
from transformers import pipeline

from sslcli.errors import SSLError
from sslcli.text.fill_mask import FillMask, FillResult
from sslcli.text.loading import load_masked_lm

TEXTS = [
    "It is a truth universally [MASK], that a single man must be in want of a wife.",
    "She was [MASK] and [MASK] happy.",
    "The family of [MASK] had long been settled in Sussex.",
    "[MASK] Bennet was among the earliest of those who waited on Mr. Bingley.",
]


def fill(folder: Path) -> FillMask:
    loaded = load_masked_lm(str(folder))
    return FillMask(loaded.model, loaded.tokenizer)


def predict(fill_mask: FillMask, texts: list[str], top_k: int = 5, batch: int = 2) -> list:
    return [result for chunk in fill_mask.predict(texts, top_k, batch) for result in chunk]


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_roberta"])
def test_guesses_equal_the_transformers_pipeline(
    model: str, request: pytest.FixtureRequest
) -> None:
    fill_mask = fill(request.getfixturevalue(model))
    reference = pipeline("fill-mask", model=fill_mask.model, tokenizer=fill_mask.tokenizer)
    native = fill_mask.tokenizer.mask_token
    for result, text in zip(predict(fill_mask, TEXTS, top_k=7, batch=3), TEXTS, strict=True):
        expected = reference(text.replace("[MASK]", native), top_k=7)
        expected = [expected] if isinstance(expected[0], dict) else expected
        assert len(result.guesses) == len(expected) == text.count("[MASK]")
        for guesses, rows in zip(result.guesses, expected, strict=True):
            assert [guess.token_id for guess in guesses] == [row["token"] for row in rows]
            assert [guess.token for guess in guesses] == [row["token_str"] for row in rows]
            scores = torch.tensor([guess.score for guess in guesses])
            torch.testing.assert_close(scores, torch.tensor([row["score"] for row in rows]))


def test_roberta_takes_both_mask_spellings(tiny_roberta: Path) -> None:
    fill_mask = fill(tiny_roberta)
    placeholder, native = predict(fill_mask, ["She was [MASK] happy.", "She was <mask> happy."])
    assert placeholder.guesses == native.guesses


def test_batching_does_not_change_results(tiny_bert: Path) -> None:
    fill_mask = fill(tiny_bert)
    one_by_one = predict(fill_mask, TEXTS, batch=1)
    batched = predict(fill_mask, TEXTS, batch=4)
    for single, together in zip(one_by_one, batched, strict=True):
        assert [g.token_id for g in single.guesses[0]] == [g.token_id for g in together.guesses[0]]
        assert single.guesses[0][0].score == pytest.approx(together.guesses[0][0].score, rel=1e-5)


def test_joint_fill(tiny_bert: Path) -> None:
    fill_mask = fill(tiny_bert)
    single, double = predict(fill_mask, [TEXTS[0], TEXTS[1]])
    assert single.filled_tokens == [single.guesses[0][0].token]
    assert single.filled_score == pytest.approx(single.guesses[0][0].score)
    assert "[MASK]" not in double.filled and len(double.filled_tokens) == 2
    assert 0 < double.filled_score <= max(g[0].score for g in double.guesses)
    # the most confident mask is filled first, with its independent top guess
    first = max(range(2), key=lambda index: double.guesses[index][0].score)
    assert double.filled_tokens[first] == double.guesses[first][0].token


def test_long_text_is_cut_around_its_mask(tiny_bert: Path) -> None:
    fill_mask = fill(tiny_bert)  # reads 64 tokens
    words = "the house was very large and " * 20
    (result,) = predict(fill_mask, [words + "she was [MASK] happy. " + words])
    assert isinstance(result, FillResult) and result.truncated
    (short,) = predict(fill_mask, ["she was [MASK] happy."])
    assert not short.truncated
    with pytest.raises(SSLError, match="too long: its masks span") as error:
        predict(fill_mask, ["[MASK] " + words + " [MASK]"])
    assert error.value.exit_code == 2


@pytest.mark.parametrize(
    ("texts", "message"),
    [
        (["No mask in this one."], "text 1 has no mask"),
        (["She was [MASK].", "   "], "text 2 is empty"),
        ([], "no text given"),
    ],
)
def test_bad_texts_are_refused_in_one_sentence(
    tiny_bert: Path, texts: list[str], message: str
) -> None:
    with pytest.raises(SSLError, match=message) as error:
        predict(fill(tiny_bert), texts)
    assert error.value.exit_code == 2


def test_no_mask_hint_names_the_native_token(tiny_roberta: Path) -> None:
    with pytest.raises(SSLError) as error:
        predict(fill(tiny_roberta), ["nothing to fill"])
    assert "<mask>" in error.value.hint


def test_encoder_without_head_is_refused(tmp_path: Path, tiny_bert: Path) -> None:
    from transformers import AutoModel, AutoTokenizer

    AutoModel.from_pretrained(tiny_bert).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path)
    with pytest.raises(SSLError, match="has no masked-language head"):
        load_masked_lm(str(tmp_path))


def test_unreachable_hub_is_a_runtime_error() -> None:
    with pytest.raises(SSLError, match="model hub is unreachable") as error:
        load_masked_lm("someone/tiny-bert")
    assert error.value.exit_code == 1


def test_folder_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(SSLError, match=r"does not hold a model: it has no config\.json") as error:
        load_masked_lm(str(tmp_path))
    assert error.value.exit_code == 2


@pytest.mark.parametrize("model", ["tiny_bert", "tiny_roberta"])
def test_joint_fill_never_chooses_a_special_token(
    model: str, request: pytest.FixtureRequest
) -> None:
    fill_mask = fill(request.getfixturevalue(model))
    special = fill_mask.tokenizer.all_special_ids
    with torch.no_grad():  # every special token becomes the likeliest guess at every mask
        fill_mask.model.get_output_embeddings().bias[special] += 50.0
    (result,) = predict(fill_mask, ["She [MASK] was [MASK] and [MASK] happy."])
    assert all(guesses[0].token_id in special for guesses in result.guesses)
    assert len(result.filled_tokens) == 3
    for token in result.filled_tokens:  # filled skips special tokens: check each choice
        assert token.strip() and token not in fill_mask.tokenizer.all_special_tokens
