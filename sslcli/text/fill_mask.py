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
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from sslcli.errors import usage_error
from sslcli.text.head import logits_at
from sslcli.text.loading import position_count, special_token_ids, special_tokens_around

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MASK_PLACEHOLDER = "[MASK]"
"""Accepted in every text whatever the model's own mask token is."""
PREVIEW_CHARACTERS = 60
DEFAULT_POSITIONS = 512
"""Tokens read at once by a model whose config states no position table."""


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


class FillMask:
    """Fill-mask with a loaded model (in eval mode) and its tokenizer."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        self.mask_id: int = tokenizer.mask_token_id
        self.special_ids = special_token_ids(tokenizer, model.config.vocab_size)
        self.max_tokens = _max_tokens(model, tokenizer)
        self.prefix, self.suffix = special_tokens_around(tokenizer)

    def predict(
        self, texts: Sequence[str], top_k: int = 5, batch_size: int = 32
    ) -> Iterator[list[FillResult]]:
        """Results in input order, one list per batch of ``batch_size`` texts."""
        if top_k < 1:
            raise usage_error(f"--top-k must be 1 or more, got {top_k}")
        if batch_size < 1:
            raise usage_error(f"--batch-size must be 1 or more, got {batch_size}")
        top_k = min(top_k, self.model.config.vocab_size)
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
        tokenized = self.tokenizer(
            [self._native_masks(text) for text in texts], add_special_tokens=False
        )["input_ids"]
        return [
            self._fit(ids, number, text)
            for number, (ids, text) in enumerate(zip(tokenized, texts, strict=True), 1)
        ]

    def _native_masks(self, text: str) -> str:
        return text.replace(MASK_PLACEHOLDER, self.tokenizer.mask_token)

    def _fit(self, ids: list[int], number: int, text: str) -> _Encoded:
        masks = [index for index, token in enumerate(ids) if token == self.mask_id]
        if not masks:
            native = self.tokenizer.mask_token
            alternative = f" or {native}" if native != MASK_PLACEHOLDER else ""
            raise usage_error(
                f"text {number} has no mask: {_preview(text)!r}",
                f"write {MASK_PLACEHOLDER}{alternative} where a word is missing",
            )
        budget = self.max_tokens - len(self.prefix) - len(self.suffix)
        truncated = len(ids) > budget
        if truncated:
            span = masks[-1] - masks[0] + 1
            if span > budget:
                raise usage_error(
                    f"text {number} is too long: its masks span {span} tokens and the model "
                    f"reads at most {self.max_tokens}",
                    "split it into shorter texts, each with its masks close together",
                )
            centre = (masks[0] + masks[-1]) // 2
            lowest, highest = max(0, masks[-1] - budget + 1), min(masks[0], len(ids) - budget)
            start = min(max(centre - budget // 2, lowest), highest)
            ids = ids[start : start + budget]
        return _Encoded(self.prefix + ids + self.suffix, truncated)

    def _mask_probabilities(self, sequences: list[list[int]]) -> list[torch.Tensor]:
        """Per sequence: a (masks, vocabulary) tensor of probabilities, on the CPU."""
        import torch

        length = max(len(ids) for ids in sequences)
        pad = self.tokenizer.pad_token_id or 0
        input_ids = torch.full((len(sequences), length), pad, dtype=torch.long)
        attention = torch.zeros((len(sequences), length), dtype=torch.long)
        for row, ids in enumerate(sequences):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
        rows, columns = (input_ids == self.mask_id).nonzero(as_tuple=True)
        with torch.inference_mode():
            logits = logits_at(
                self.model, input_ids.to(self.device), attention.to(self.device), rows, columns
            )
            probabilities = logits.float().softmax(dim=-1).cpu()
        counts = torch.bincount(rows, minlength=len(sequences)).tolist()
        return list(probabilities.split(counts))

    def _result(
        self, text: str, item: _Encoded, probabilities: torch.Tensor, top_k: int
    ) -> FillResult:
        values, indices = probabilities.topk(top_k, dim=-1)
        guesses = [
            [
                Guess(token_id, self.tokenizer.decode([token_id]), score)
                for token_id, score in zip(ids, scores, strict=True)
            ]
            for ids, scores in zip(indices.tolist(), values.tolist(), strict=True)
        ]
        filled_ids, chosen, score = self._joint_fill(item.ids, probabilities)
        return FillResult(
            text=text,
            guesses=guesses,
            filled=self.tokenizer.decode(filled_ids, skip_special_tokens=True),
            filled_tokens=[self.tokenizer.decode([token_id]) for token_id in chosen],
            filled_score=score,
            truncated=item.truncated,
        )

    def _joint_fill(
        self, ids: list[int], probabilities: torch.Tensor
    ) -> tuple[list[int], list[int], float]:
        """Fill the most confident mask, run the model again, repeat. Returns the filled ids,
        the chosen token per mask (in text order) and the product of their probabilities."""
        ids = list(ids)
        positions = [index for index, token in enumerate(ids) if token == self.mask_id]
        chosen: dict[int, int] = {}
        score = 1.0
        while True:
            remaining = [position for position in positions if position not in chosen]
            probabilities = probabilities.clone()
            probabilities[:, self.special_ids] = 0  # no [MASK], [SEP], [PAD], [UNK], ...
            best, token = probabilities.max(dim=-1)
            pick = int(best.argmax())
            chosen[remaining[pick]] = int(token[pick])
            ids[remaining[pick]] = int(token[pick])
            score *= float(best[pick])
            if len(chosen) == len(positions):
                return ids, [chosen[position] for position in positions], score
            probabilities = self._mask_probabilities([ids])[0]


def _max_tokens(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> int:
    """Tokens the model reads at once: its position table, capped by the tokenizer's stated
    maximum."""
    positions = position_count(model) or DEFAULT_POSITIONS
    stated = tokenizer.model_max_length
    return min(positions, stated) if stated and stated < 1_000_000 else positions


def _preview(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= PREVIEW_CHARACTERS else text[: PREVIEW_CHARACTERS - 3] + "..."
