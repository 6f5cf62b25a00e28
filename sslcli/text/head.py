"""The masked-language prediction head: find it, run it only where predictions are needed,
and give an encoder a fresh one (transform initialised to the identity, decoder tied to the
word embeddings)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

HEAD_ATTRIBUTES = ("cls", "lm_head", "predictions")
"""Where masked-language models keep their prediction head (BERT, RoBERTa, ALBERT)."""


def prediction_head(model: PreTrainedModel) -> torch.nn.Module | None:
    """The module mapping hidden states to vocabulary logits, where the model has one."""
    for attribute in HEAD_ATTRIBUTES:
        head = getattr(model, attribute, None)
        if head is not None:
            return head
    return None


def logits_at(
    model: PreTrainedModel,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    rows: torch.Tensor,
    columns: torch.Tensor,
) -> torch.Tensor:
    """(positions, vocabulary) logits at ``(rows, columns)`` only. Where the head can be
    reached it runs on those positions alone: the vocabulary projection is about half of a
    small model's cost per token. Other models run whole."""
    head = prediction_head(model)
    if head is None:
        return model(input_ids=input_ids, attention_mask=attention_mask).logits[rows, columns]
    hidden = model.base_model(input_ids=input_ids, attention_mask=attention_mask)[0]
    return head(hidden[rows.to(hidden.device), columns.to(hidden.device)])


def logits_at_masks(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor, mask_id: int
) -> torch.Tensor:
    """(masks, vocabulary) logits at every position of ``input_ids`` holding ``mask_id``, row
    by row (``logits_at`` those positions); traced as it is into the ONNX copy."""
    rows, columns = (input_ids == mask_id).nonzero(as_tuple=True)
    return logits_at(model, input_ids, attention_mask, rows, columns)


def initialise_head(model: PreTrainedModel) -> None:
    """Reset the head: square transforms to the identity, normalisations to 1 and 0, output
    biases to 0, the decoder tied to the word embeddings. Predictions then start from the
    encoder's own hidden states compared with every word's embedding."""
    import torch

    head = prediction_head(model)
    if head is None:
        raise ValueError(f"{type(model).__name__} has no prediction head sslcli can reach")
    hidden = model.config.hidden_size
    with torch.no_grad():
        for module in head.modules():
            if isinstance(module, torch.nn.Linear) and module.weight.shape == (hidden, hidden):
                torch.nn.init.eye_(module.weight)
                torch.nn.init.zeros_(module.bias)
            elif isinstance(module, torch.nn.LayerNorm):
                module.reset_parameters()
        for name, parameter in head.named_parameters():
            if name.endswith("bias") and parameter.shape == (model.config.vocab_size,):
                parameter.zero_()
    model.config.tie_word_embeddings = True
    model.tie_weights()
