"""BERT's masking: choose 15% of the tokens (or of the words), then replace 80% of the chosen
with the mask token, 10% with a random token and keep 10%; the model predicts the originals.

Randomness comes only from the generator passed in, so a step's masks depend on its seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sslcli.errors import usage_error
from sslcli.text.loading import special_token_ids

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

IGNORED_LABEL = -100
"""Label of the positions the loss skips (transformers' convention)."""
MASK_SHARE = 0.8
RANDOM_SHARE_OF_REST = 0.5
WORD_MARKERS = ("Ġ", "▁")
"""Byte-level BPE and SentencePiece mark a word's first piece (WordPiece marks the others)."""


@dataclass(frozen=True)
class MaskingVocabulary:
    mask_token_id: int
    vocab_size: int
    special: torch.Tensor
    """(vocab,) bool: tokens never chosen (padding, [CLS], [SEP], ...)."""
    continues_word: torch.Tensor | None
    """(vocab,) bool: pieces that continue the previous token's word; None when unknown."""


def masking_vocabulary(tokenizer: PreTrainedTokenizerBase) -> MaskingVocabulary:
    import torch

    size = len(tokenizer)
    special = torch.zeros(size, dtype=torch.bool)
    special[special_token_ids(tokenizer, size)] = True
    return MaskingVocabulary(
        tokenizer.mask_token_id, size, special, _continuation_table(tokenizer, size)
    )


def _continuation_table(tokenizer: PreTrainedTokenizerBase, size: int) -> torch.Tensor | None:
    import torch

    tokens = tokenizer.convert_ids_to_tokens(list(range(size)))
    backend = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    if type(backend).__name__ == "WordPiece":
        prefix = backend.continuing_subword_prefix
        return torch.tensor([token.startswith(prefix) for token in tokens])
    for marker in WORD_MARKERS:
        if any(token.startswith(marker) for token in tokens):
            return torch.tensor([not token.startswith(marker) for token in tokens])
    return None


def mask_tokens(
    input_ids: torch.Tensor,
    vocabulary: MaskingVocabulary,
    probability: float,
    generator: torch.Generator,
    whole_words: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked inputs and labels (``IGNORED_LABEL`` where nothing is predicted) for a
    (batch, length) tensor of ids on the CPU."""
    import torch

    special = vocabulary.special[input_ids]
    draws = torch.rand(input_ids.shape, generator=generator)
    if whole_words:
        draws = _per_word(draws, input_ids, vocabulary)
    chosen = (draws < probability) & ~special
    labels = torch.where(chosen, input_ids, IGNORED_LABEL)
    action = torch.rand(input_ids.shape, generator=generator)
    to_mask = chosen & (action < MASK_SHARE)
    to_random = chosen & ~to_mask & (action < MASK_SHARE + (1 - MASK_SHARE) * RANDOM_SHARE_OF_REST)
    random_tokens = torch.randint(vocabulary.vocab_size, input_ids.shape, generator=generator)
    masked = torch.where(to_mask, vocabulary.mask_token_id, input_ids)
    masked = torch.where(to_random, random_tokens, masked)
    return masked, labels


def _per_word(
    draws: torch.Tensor, input_ids: torch.Tensor, vocabulary: MaskingVocabulary
) -> torch.Tensor:
    """Give every piece of a word the draw of the word's first piece."""
    import torch

    if vocabulary.continues_word is None:
        raise usage_error(
            "whole-word masking needs a tokenizer that marks word pieces (WordPiece, "
            "byte-level BPE or SentencePiece)",
            "drop --whole-word",
        )
    starts = ~vocabulary.continues_word[input_ids] | vocabulary.special[input_ids]
    word = (torch.cumsum(starts.long(), dim=1) - 1).clamp(min=0)
    first_piece = torch.zeros_like(word)
    positions = torch.arange(input_ids.shape[1]).expand_as(word)
    first_piece.scatter_reduce_(1, word, positions, reduce="amin", include_self=False)
    return draws.gather(1, first_piece.gather(1, word))
