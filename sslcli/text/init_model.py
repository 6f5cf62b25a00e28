"""The model ``train-mlm --init`` starts from: a masked-language model (registry name, folder
or hub id), an encoder without a head (a fresh head is added), or a size trained from
scratch with a given tokenizer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sslcli.errors import usage_error
from sslcli.text.head import initialise_head
from sslcli.text.loading import load_masked_lm, load_tokenizer

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

SIZES: dict[str, dict[str, int]] = {
    "tiny": {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 256,
    },
    "mini": {
        "hidden_size": 256,
        "num_hidden_layers": 4,
        "num_attention_heads": 4,
        "intermediate_size": 1024,
    },
    "small": {
        "hidden_size": 512,
        "num_hidden_layers": 4,
        "num_attention_heads": 8,
        "intermediate_size": 2048,
    },
}
"""BERT sizes for ``--init SIZE``: trained from scratch (positions: ``--seq-len``)."""


@dataclass
class InitialModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    description: str
    """One sentence on where training starts, for the user."""


def initial_model(init: str, tokenizer_name: str | None, seq_len: int, seed: int) -> InitialModel:
    """Build or load the starting model (float32, on the CPU); ``seed`` fixes new weights."""
    import torch

    torch.manual_seed(seed)
    if init in SIZES:
        return _from_scratch(init, tokenizer_name, seq_len)
    if tokenizer_name is not None:
        raise usage_error(
            "--tokenizer applies only to --init " + "|".join(SIZES),
            f"{init} brings its own tokenizer: drop --tokenizer",
        )
    loaded = load_masked_lm(init, require_head=False)
    if not loaded.missing_head:
        return InitialModel(loaded.model, loaded.tokenizer, f"continuing {init} (with its head)")
    initialise_head(loaded.model)
    return InitialModel(
        loaded.model,
        loaded.tokenizer,
        f"{init} has no masked-language head: added a fresh one (transform initialised to the "
        "identity, decoder tied to the word embeddings)",
    )


def _from_scratch(size: str, tokenizer_name: str | None, seq_len: int) -> InitialModel:
    from transformers import BertConfig, BertForMaskedLM

    if tokenizer_name is None:
        raise usage_error(
            f"--init {size} trains a new model from scratch and needs a tokenizer",
            "add --tokenizer NAME_OR_FOLDER (e.g. --tokenizer sslcli-minilm-mlm)",
        )
    tokenizer = load_tokenizer(tokenizer_name)
    if tokenizer.mask_token_id is None:
        raise usage_error(f"the tokenizer of {tokenizer_name} has no mask token")
    config = BertConfig(
        vocab_size=len(tokenizer),
        max_position_embeddings=seq_len,
        pad_token_id=tokenizer.pad_token_id or 0,
        **SIZES[size],
    )
    model = BertForMaskedLM(config)
    parameters = sum(parameter.numel() for parameter in model.parameters())
    return InitialModel(
        model,
        tokenizer,
        f"new {size} BERT ({parameters / 1e6:.2f}M parameters) with the tokenizer of "
        f"{tokenizer_name}, trained from scratch",
    )
