"""The masked-language model that ships inside the package."""

from pathlib import Path

from safetensors import safe_open
from transformers import AutoModelForMaskedLM

from sslcli.text.fill_mask import FillMask
from sslcli.text.loading import load_masked_lm
from sslcli.text.models import DEFAULT_TEXT_MODEL, resolve_text_model

FOLDER = Path(resolve_text_model(DEFAULT_TEXT_MODEL).location)
MAX_BYTES = 60_000_000


def test_ships_small_fp16_weights_tokenizer_and_model_card() -> None:
    names = {path.name for path in FOLDER.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= names
    assert sum(path.stat().st_size for path in FOLDER.iterdir()) < MAX_BYTES
    with safe_open(FOLDER / "model.safetensors", "pt") as weights:
        names = weights.keys()  # safe_open objects are not iterable
        assert {str(weights.get_slice(name).get_dtype()) for name in names} == {"F16"}


def test_loads_with_transformers_without_missing_weights() -> None:
    _, info = AutoModelForMaskedLM.from_pretrained(FOLDER, output_loading_info=True)
    assert not any(info[key] for key in ("missing_keys", "unexpected_keys", "mismatched_keys"))


def test_this_is_a_cat() -> None:
    loaded = load_masked_lm(DEFAULT_TEXT_MODEL)
    (result,) = next(FillMask(loaded.model, loaded.tokenizer).predict(["This is [MASK] cat."]))
    assert result.guesses[0][0].token == "a"
    assert result.filled == "this is a cat."
