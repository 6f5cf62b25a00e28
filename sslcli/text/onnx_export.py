"""Make an entry of the ONNX cache (``onnx_cache``): export a masked-language model with the
shared export code (``engine.onnx``), save its tokenizer, and check both against torch and
transformers before the entry is used.

The check runs :data:`CHECK_TEXTS` (three texts of different lengths, one long enough to be
cut to the model's window, so padding and the free axes are exercised at other shapes than
the export's example) through the ONNX file and the torch model, and requires the largest
absolute logit difference to be at most ``onnx_cache.TOLERANCE``. The saved tokenizer must
encode those texts and decode every token of the vocabulary (the pipeline's ``token_str``)
and the check sequences as transformers does. A failed check is recorded, so the export is
not tried again on every run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import torch
from torch import nn

from sslcli.engine.atomic import atomic_folder, write_failure
from sslcli.engine.onnx import largest_difference, require, write_onnx
from sslcli.errors import SSLError, runtime_error
from sslcli.text.backends import JsonTokens, ModelFacts, Tokens
from sslcli.text.fill_mask import FillMask, padded
from sslcli.text.head import logits_at_masks
from sslcli.text.loading import load_masked_lm
from sslcli.text.onnx_cache import (
    EXPORT_PACKAGES,
    FACTS_KEY,
    INPUTS,
    OUTPUT,
    TOLERANCE,
    Check,
    OnnxEntry,
)

CHECK_TEXTS = (
    "She was [MASK] and [MASK] happy.",
    "This is [MASK] cat.",
    " ".join(
        ["It is a truth universally acknowledged, that a single man in possession of a good"]
        + ["fortune, must be in want of a [MASK]."]
        + ["However little known the feelings or views of such a man may be"] * 60
    ),
)
EXAMPLE_TEXTS = CHECK_TEXTS[:2]
"""What the export traces (the check batch has another batch size and other lengths)."""
FREE_AXES = {name: {0: "batch", 1: "sequence"} for name in INPUTS}


class MaskLogits(nn.Module):
    """A masked-language model's logits at the masks of its input (``head.logits_at_masks``,
    as the torch path computes them): what the ONNX copy computes, (masks, vocabulary)."""

    def __init__(self, model: nn.Module, mask_id: int) -> None:
        super().__init__()
        self.model = model
        self.mask_id = mask_id

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return logits_at_masks(self.model, input_ids, attention_mask, self.mask_id)


def make_entry(name: str, entry: OnnxEntry, tolerance: float = TOLERANCE) -> Check:
    """Export ``name`` (on the CPU, float32) into ``entry`` and check it; the check is
    written either way, the ONNX file and tokenizer only when it passed."""
    for package in EXPORT_PACKAGES:
        require(package)
    loaded = load_masked_lm(name, "cpu")
    fill = FillMask(loaded.model, loaded.tokenizer)
    module = MaskLogits(loaded.model, fill.facts.mask_id).eval()
    try:
        with atomic_folder(entry.folder) as folder:
            made = OnnxEntry(folder)
            check = _export_and_check(name, fill, module, made, tolerance)
            if check.refused is not None:
                made.onnx.unlink(missing_ok=True)
                made.tokenizer.unlink(missing_ok=True)
            fields = {"model": name, "difference": check.difference, "refused": check.refused}
            made.check.write_text(json.dumps(fields, indent=2), encoding="utf-8")
    except OSError as error:
        raise runtime_error(
            write_failure(entry.folder, error),
            "free some disk space or set XDG_CACHE_HOME to a writable folder",
        ) from None
    return check


def _export_and_check(
    name: str, fill: FillMask, module: MaskLogits, made: OnnxEntry, tolerance: float
) -> Check:
    try:
        write_onnx(
            module,
            _batch(fill, EXAMPLE_TEXTS),
            made.onnx,
            INPUTS,
            OUTPUT,
            FREE_AXES,
            {FACTS_KEY: fill.facts.to_json(), "sslcli.model": name},
        )
        fill.tokenizer.backend_tokenizer.save(str(made.tokenizer))
    except (SSLError, OSError):
        raise
    except Exception as error:  # the exporter's failures (an unsupported layer) are many
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        return Check(None, f"the ONNX export of {name} failed ({reason}): transformers runs it")
    inputs = dict(zip(INPUTS, _batch(fill, CHECK_TEXTS), strict=True))
    difference = largest_difference(made.onnx, module, inputs)
    if difference > tolerance:
        return Check(
            difference,
            f"the ONNX copy of {name} is not used: its logits differ from torch's by "
            f"{difference:.1e} (above {tolerance:g}), transformers runs it",
        )
    mismatch = _tokenizer_mismatch(JsonTokens(made.tokenizer), fill.tokens, fill.facts)
    if mismatch is not None:
        return Check(difference, f"the ONNX copy of {name} is not used: {mismatch}")
    return Check(difference, None)


def _batch(fill: FillMask, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """``texts`` as fill-mask feeds them (cut to the model's window, padded)."""
    input_ids, attention = padded([item.ids for item in fill.encode(texts)], fill.facts.pad_id)
    return torch.from_numpy(input_ids), torch.from_numpy(attention)


def _tokenizer_mismatch(saved: JsonTokens, reference: Tokens, facts: ModelFacts) -> str | None:
    """Where ``saved`` tokenizes or decodes otherwise than transformers, in words; None when
    it agrees on the check texts and on every token of the vocabulary."""
    texts = [text.replace("[MASK]", facts.mask_token) for text in CHECK_TEXTS]
    if saved.encode(texts) != reference.encode(texts):
        return "its tokenizer.json splits the check texts otherwise than transformers"
    for token_id in range(facts.vocab_size):
        ours, theirs = saved.decode([token_id]), reference.decode([token_id])
        if ours != theirs:
            return (
                f"its tokenizer.json decodes token {token_id} as {ours!r}, transformers {theirs!r}"
            )
    for ids in reference.encode(texts):
        sequence = [*facts.prefix, *ids, *facts.suffix]
        if saved.decode(sequence, True) != reference.decode(sequence, True):
            return "its tokenizer.json decodes the check texts otherwise than transformers"
    return None
