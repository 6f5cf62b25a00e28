from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from sslcli.text.masking import IGNORED_LABEL, mask_tokens, masking_vocabulary


@pytest.fixture(scope="module")
def vocabulary(bert_tokenizer: Path):
    return masking_vocabulary(AutoTokenizer.from_pretrained(bert_tokenizer))


def test_15_percent_chosen_then_80_10_10(vocabulary) -> None:
    ids = torch.randint(
        20, vocabulary.vocab_size, (200, 100), generator=torch.Generator().manual_seed(1)
    )
    masked, labels = mask_tokens(ids, vocabulary, 0.15, torch.Generator().manual_seed(0))
    chosen = labels != IGNORED_LABEL
    assert chosen.float().mean() == pytest.approx(0.15, abs=0.01)
    assert torch.equal(labels[chosen], ids[chosen])
    as_mask = (masked == vocabulary.mask_token_id)[chosen].float().mean()
    kept = (masked == ids)[chosen].float().mean()
    assert as_mask == pytest.approx(0.8, abs=0.02)
    assert kept == pytest.approx(0.1 + 0.1 / vocabulary.vocab_size, abs=0.02)
    assert torch.equal(masked[~chosen], ids[~chosen])


def test_special_tokens_are_never_chosen(vocabulary) -> None:
    special = torch.tensor(sorted(torch.nonzero(vocabulary.special).flatten().tolist()))
    ids = special[torch.randint(len(special), (50, 40))]
    _, labels = mask_tokens(ids, vocabulary, 0.9, torch.Generator().manual_seed(0))
    assert (labels == IGNORED_LABEL).all()


def test_same_seed_same_masks(vocabulary) -> None:
    ids = torch.randint(20, vocabulary.vocab_size, (8, 32))
    first = mask_tokens(ids, vocabulary, 0.15, torch.Generator().manual_seed(3))
    second = mask_tokens(ids, vocabulary, 0.15, torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_whole_words_are_masked_together(bert_tokenizer: Path, vocabulary) -> None:
    tokenizer = AutoTokenizer.from_pretrained(bert_tokenizer)
    piece = tokenizer.convert_tokens_to_ids("##s")
    word = tokenizer.convert_tokens_to_ids("house")
    ids = torch.tensor([[word, piece, piece] * 30] * 40)
    _, labels = mask_tokens(
        ids, vocabulary, 0.3, torch.Generator().manual_seed(0), whole_words=True
    )
    chosen = (labels != IGNORED_LABEL).reshape(40, 30, 3)
    assert chosen.any()
    assert torch.equal(chosen[..., 0], chosen[..., 1]) and torch.equal(
        chosen[..., 0], chosen[..., 2]
    )
