from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer

from sslcli.errors import SSLError
from sslcli.text.corpus import corpus_files, cut_blocks, split_heldout, tokenize_files
from tests.text.tiny_models import SAMPLE_TEXT


def test_corpus_files(tmp_path: Path) -> None:
    assert [f.name for f in corpus_files(SAMPLE_TEXT)] == sorted(
        f.name for f in SAMPLE_TEXT.glob("*.txt")
    )
    with pytest.raises(SSLError, match="does not exist"):
        corpus_files(tmp_path / "missing")
    with pytest.raises(SSLError, match=r"no \.txt files"):
        corpus_files(tmp_path)


def test_blocks_are_wrapped_in_special_tokens_and_held_out_apart(bert_tokenizer: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(bert_tokenizer)
    ids = tokenize_files(corpus_files(SAMPLE_TEXT), tokenizer, show_progress=False)
    blocks = cut_blocks(ids, 16, tokenizer)
    assert blocks.shape == (len(ids) // 14, 16)
    assert (blocks[:, 0] == tokenizer.cls_token_id).all()
    assert (blocks[:, -1] == tokenizer.sep_token_id).all()
    assert torch.equal(blocks[0, 1:-1], ids[:14])
    train, heldout = split_heldout(blocks, 0.02, 50, seed=0)
    assert len(heldout) == 50 and len(train) + len(heldout) == len(blocks)
    again = split_heldout(blocks, 0.02, 50, seed=0)[1]
    assert torch.equal(heldout, again)
    rows = {tuple(row.tolist()) for row in train}
    assert sum(tuple(row.tolist()) in rows for row in heldout) <= 1  # the odd repeated block


def test_not_utf8_is_refused(tmp_path: Path, bert_tokenizer: Path) -> None:
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    tokenizer = AutoTokenizer.from_pretrained(bert_tokenizer)
    with pytest.raises(SSLError, match="not UTF-8"):
        tokenize_files(corpus_files(tmp_path), tokenizer, show_progress=False)
