"""The two backends fill-mask runs over: a torch model with its transformers tokenizer, and
an ONNX file run by onnxruntime with a ``tokenizers`` tokenizer read from ``tokenizer.json``.

Fill-mask itself (``fill_mask.MaskFiller``) sees only three things, whatever the backend:

- a :data:`LogitsFunction`: token ids and attention mask in, the logits at the masks out
  (the prediction head runs there alone), all numpy arrays;
- :class:`Tokens`: text to ids without special tokens, and ids back to text (what
  transformers' ``tokenizer(texts, add_special_tokens=False)`` and ``tokenizer.decode`` do);
- :class:`ModelFacts`: the mask and special tokens, the tokens around one text and how many
  tokens the model reads, taken from transformers (:func:`facts_of`); the ONNX file carries
  them in its metadata, so the fast path never derives them a second way.

The torch side imports torch lazily and the ONNX side never imports it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from sslcli.text.head import logits_at_masks
from sslcli.text.loading import (
    position_count,
    quiet_transformers,
    special_token_ids,
    special_tokens_around,
)

if TYPE_CHECKING:
    import onnxruntime
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

LogitsFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""``(input_ids, attention_mask)``, (texts, length) int64 arrays, to float32 logits of shape
(masks, vocabulary) at every position holding the mask token, row by row."""
DEFAULT_POSITIONS = 512
"""Tokens read at once by a model whose config states no position table."""


class Tokens(Protocol):
    """A tokenizer as fill-mask uses it."""

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of each text, without special tokens, truncation or padding."""
        ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """The text of ``ids``, as transformers' ``tokenizer.decode``."""
        ...


@dataclass(frozen=True)
class ModelFacts:
    """What fill-mask needs of a model and its tokenizer besides logits and text."""

    vocab_size: int
    max_tokens: int
    """Tokens the model reads at once, special tokens included."""
    mask_token: str
    mask_id: int
    pad_id: int
    special_ids: tuple[int, ...]
    """The tokenizer's special tokens below ``vocab_size`` ([CLS], [SEP], [PAD], [MASK]...)."""
    prefix: tuple[int, ...]
    """The special tokens the tokenizer puts before one text ([CLS])."""
    suffix: tuple[int, ...]
    """... and after it ([SEP])."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ModelFacts:
        """The facts :meth:`to_json` wrote; ``ValueError`` (or ``KeyError``/``TypeError``)
        for anything else."""
        fields: dict[str, Any] = json.loads(text)
        return cls(
            vocab_size=int(fields["vocab_size"]),
            max_tokens=int(fields["max_tokens"]),
            mask_token=str(fields["mask_token"]),
            mask_id=int(fields["mask_id"]),
            pad_id=int(fields["pad_id"]),
            special_ids=tuple(int(index) for index in fields["special_ids"]),
            prefix=tuple(int(index) for index in fields["prefix"]),
            suffix=tuple(int(index) for index in fields["suffix"]),
        )


def facts_of(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> ModelFacts:
    """The facts of a loaded transformers model and tokenizer."""
    size = model.config.vocab_size
    prefix, suffix = special_tokens_around(tokenizer)
    return ModelFacts(
        vocab_size=size,
        max_tokens=_max_tokens(model, tokenizer),
        mask_token=tokenizer.mask_token,
        mask_id=tokenizer.mask_token_id,
        pad_id=tokenizer.pad_token_id or 0,
        special_ids=tuple(special_token_ids(tokenizer, size)),
        prefix=tuple(prefix),
        suffix=tuple(suffix),
    )


def _max_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """Tokens the model reads at once: its position table, capped by the tokenizer's stated
    maximum."""
    positions = position_count(model) or DEFAULT_POSITIONS
    stated = tokenizer.model_max_length
    return min(positions, stated) if stated and stated < 1_000_000 else positions


class TransformersTokens:
    """:class:`Tokens` through a transformers tokenizer."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase) -> None:
        self.tokenizer = tokenizer

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        with quiet_transformers():  # not "longer than the maximum": fill-mask cuts a window
            return self.tokenizer(list(texts), add_special_tokens=False)["input_ids"]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)


class JsonTokens:
    """:class:`Tokens` through the ``tokenizers`` library on a ``tokenizer.json``, as
    transformers' fast tokenizers call it: ``encode_batch`` without truncation or padding,
    ``decode`` (whose own default skips special tokens: here it skips them only when told).
    Transformers may clean up decoded spaces afterwards; the ONNX cache checks, when it is
    made, that this tokenizer decodes every token as transformers does."""

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(path))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [encoding.ids for encoding in encodings]

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)


def torch_logits(model: PreTrainedModel, mask_id: int) -> LogitsFunction:
    """Logits from a transformers model (in eval mode) on its device, the head run at the
    masks alone (``head.logits_at_masks``)."""
    import torch

    device = next(model.parameters()).device

    def logits(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            at_masks = logits_at_masks(
                model,
                torch.from_numpy(input_ids).to(device),
                torch.from_numpy(attention_mask).to(device),
                mask_id,
            )
            return at_masks.float().cpu().numpy()

    return logits


def onnx_logits(session: onnxruntime.InferenceSession) -> LogitsFunction:
    """Logits from an ONNX copy (``onnx_export.MaskLogits``: ``input_ids`` and
    ``attention_mask`` in, the logits at the masks out), run by onnxruntime."""

    def logits(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        (at_masks,) = session.run(None, feed)
        return at_masks

    return logits
