"""Fill-mask: ranked guesses for every mask in a text, and a joint fill of all of them.

Scores equal transformers' ``fill-mask`` pipeline on the same model: one forward pass over
the text with every mask in place, a softmax over the vocabulary at each mask. With several
masks, each mask's guesses are therefore predicted independently (the other masks stay
masked). The joint fill is iterative: the mask whose best guess is most probable is filled
first, the model runs again with it filled, and so on until no mask is left (greedy, one
pass per extra mask); its score is the product of the chosen probabilities. The joint fill
never chooses a special token ([MASK], [SEP], [PAD], [UNK], ...), though the guesses, as the
pipeline's, may rank them.

Texts longer than the model reads are truncated to a window centred on the masks; a text
whose masks lie further apart than the model reads is refused.

One implementation, :class:`MaskFiller`, over numpy arrays, serves both backends
(``backends``): :class:`FillMask` builds it on a torch model and its transformers tokenizer,
``onnx_cache.open_fill_mask`` on an ONNX file and a ``tokenizers`` tokenizer.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from sslcli.errors import usage_error
from sslcli.text.backends import (
    LogitsFunction,
    ModelFacts,
    Tokens,
    TransformersTokens,
    facts_of,
    torch_logits,
)

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MASK_PLACEHOLDER = "[MASK]"
"""Accepted in every text whatever the model's own mask token is."""
PREVIEW_CHARACTERS = 60


@dataclass(frozen=True)
class Guess:
    token_id: int
    token: str
    """The decoded token, as the fill-mask pipeline's ``token_str``."""
    score: float


@dataclass(frozen=True)
class FillResult:
    text: str
    guesses: list[list[Guess]]
    """Per mask, in text order: the top-k guesses, each mask predicted independently."""
    filled: str
    """The text with every mask filled jointly (most confident mask first, iteratively)."""
    filled_tokens: list[str]
    """The tokens the joint fill chose, one per mask in text order."""
    filled_score: float
    """Product of the probabilities of the joint fill's choices."""
    truncated: bool
    """True when the text was cut to a window around its masks."""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Encoded:
    ids: list[int]
    truncated: bool


class MaskFiller:
    """Fill-mask over any backend: a logits function, a tokenizer and the model's facts."""

    def __init__(self, logits: LogitsFunction, tokens: Tokens, facts: ModelFacts) -> None:
        self.logits = logits
        self.tokens = tokens
        self.facts = facts

    def predict(
        self, texts: Sequence[str], top_k: int = 5, batch_size: int = 32
    ) -> Iterator[list[FillResult]]:
        """Results in input order, one list per batch of ``batch_size`` texts."""
        if top_k < 1:
            raise usage_error(f"--top-k must be 1 or more, got {top_k}")
        if batch_size < 1:
            raise usage_error(f"--batch-size must be 1 or more, got {batch_size}")
        top_k = min(top_k, self.facts.vocab_size)
        encoded = self.encode(texts)  # all of them first: bad input fails before any work
        for start in range(0, len(texts), batch_size):
            batch = encoded[start : start + batch_size]
            probabilities = self._mask_probabilities([item.ids for item in batch])
            yield [
                self._result(text, item, probs, top_k)
                for text, item, probs in zip(
                    texts[start : start + batch_size], batch, probabilities, strict=True
                )
            ]

    def encode(self, texts: Sequence[str]) -> list[_Encoded]:
        """Token ids with special tokens; a clear error for an empty, mask-less or too long
        text."""
        if not texts:
            raise usage_error("no text given", f"give a text with {MASK_PLACEHOLDER} in it")
        for number, text in enumerate(texts, 1):
            if not text.strip():
                raise usage_error(
                    f"text {number} is empty", f"give a text with {MASK_PLACEHOLDER} in it"
                )
        tokenized = self.tokens.encode([self._native_masks(text) for text in texts])
        return [
            self._fit(ids, number, text)
            for number, (ids, text) in enumerate(zip(tokenized, texts, strict=True), 1)
        ]

    def _native_masks(self, text: str) -> str:
        return text.replace(MASK_PLACEHOLDER, self.facts.mask_token)

    def _fit(self, ids: list[int], number: int, text: str) -> _Encoded:
        masks = [index for index, token in enumerate(ids) if token == self.facts.mask_id]
        if not masks:
            native = self.facts.mask_token
            alternative = f" or {native}" if native != MASK_PLACEHOLDER else ""
            raise usage_error(
                f"text {number} has no mask: {_preview(text)!r}",
                f"write {MASK_PLACEHOLDER}{alternative} where a word is missing",
            )
        prefix, suffix = list(self.facts.prefix), list(self.facts.suffix)
        budget = self.facts.max_tokens - len(prefix) - len(suffix)
        truncated = len(ids) > budget
        if truncated:
            span = masks[-1] - masks[0] + 1
            if span > budget:
                raise usage_error(
                    f"text {number} is too long: its masks span {span} tokens and the model "
                    f"reads at most {self.facts.max_tokens}",
                    "split it into shorter texts, each with its masks close together",
                )
            centre = (masks[0] + masks[-1]) // 2
            lowest, highest = max(0, masks[-1] - budget + 1), min(masks[0], len(ids) - budget)
            start = min(max(centre - budget // 2, lowest), highest)
            ids = ids[start : start + budget]
        return _Encoded(prefix + ids + suffix, truncated)

    def _mask_probabilities(self, sequences: list[list[int]]) -> list[np.ndarray]:
        """Per sequence: a (masks, vocabulary) float32 array of probabilities."""
        input_ids, attention = padded(sequences, self.facts.pad_id)
        probabilities = _softmax(self.logits(input_ids, attention))
        counts = (input_ids == self.facts.mask_id).sum(axis=1)
        return np.split(probabilities, np.cumsum(counts)[:-1])

    def _result(
        self, text: str, item: _Encoded, probabilities: np.ndarray, top_k: int
    ) -> FillResult:
        values, indices = _top_k(probabilities, top_k)
        guesses = [
            [
                Guess(token_id, self.tokens.decode([token_id]), score)
                for token_id, score in zip(ids, scores, strict=True)
            ]
            for ids, scores in zip(indices.tolist(), values.tolist(), strict=True)
        ]
        filled_ids, chosen, score = self._joint_fill(item.ids, probabilities)
        return FillResult(
            text=text,
            guesses=guesses,
            filled=self.tokens.decode(filled_ids, skip_special_tokens=True),
            filled_tokens=[self.tokens.decode([token_id]) for token_id in chosen],
            filled_score=score,
            truncated=item.truncated,
        )

    def _joint_fill(
        self, ids: list[int], probabilities: np.ndarray
    ) -> tuple[list[int], list[int], float]:
        """Fill the most confident mask, run the model again, repeat. Returns the filled ids,
        the chosen token per mask (in text order) and the product of their probabilities."""
        ids = list(ids)
        positions = [index for index, token in enumerate(ids) if token == self.facts.mask_id]
        special = list(self.facts.special_ids)
        chosen: dict[int, int] = {}
        score = 1.0
        while True:
            remaining = [position for position in positions if position not in chosen]
            probabilities = probabilities.copy()
            probabilities[:, special] = 0  # no [MASK], [SEP], [PAD], [UNK], ...
            token = probabilities.argmax(axis=-1)
            best = probabilities[np.arange(len(token)), token]
            pick = int(best.argmax())
            chosen[remaining[pick]] = int(token[pick])
            ids[remaining[pick]] = int(token[pick])
            score *= float(best[pick])
            if len(chosen) == len(positions):
                return ids, [chosen[position] for position in positions], score
            probabilities = self._mask_probabilities([ids])[0]


class FillMask(MaskFiller):
    """Fill-mask with a loaded transformers model (in eval mode) and its tokenizer."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        facts = facts_of(model, tokenizer)
        super().__init__(torch_logits(model, facts.mask_id), TransformersTokens(tokenizer), facts)
        self.model = model
        self.tokenizer = tokenizer


def padded(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(texts, longest) int64 token ids, padded on the right with ``pad_id``, and the
    attention mask (1 on tokens, 0 on padding), as the pipeline's tokenizer pads them."""
    length = max(len(ids) for ids in sequences)
    input_ids = np.full((len(sequences), length), pad_id, dtype=np.int64)
    attention = np.zeros((len(sequences), length), dtype=np.int64)
    for row, ids in enumerate(sequences):
        input_ids[row, : len(ids)] = ids
        attention[row, : len(ids)] = 1
    return input_ids, attention


def _softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float32, as ``torch.softmax``: exp(x - max) / sum."""
    exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exponentials / exponentials.sum(axis=-1, keepdims=True)


def _top_k(probabilities: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest of each row, largest first, and their indices (``torch.topk``); of
    equal values among them the lower index comes first."""
    candidates = np.sort(np.argpartition(-probabilities, k - 1, axis=-1)[:, :k], axis=-1)
    values = np.take_along_axis(probabilities, candidates, axis=-1)
    order = np.argsort(-values, axis=-1, kind="stable")
    return np.take_along_axis(values, order, axis=-1), np.take_along_axis(candidates, order, -1)


def _preview(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARACTERS else text[: PREVIEW_CHARACTERS - 3] + "..."
