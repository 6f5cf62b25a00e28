"""Tiny masked-language models and tokenizers built on the spot (no downloads): a BERT with a
WordPiece vocabulary from the sample text, and a RoBERTa with a byte-level BPE trained on it."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from tests.conftest import SAMPLE_DATA

SAMPLE_TEXT = SAMPLE_DATA / "text"
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
ROBERTA_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
TINY_SIZES = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
}


def sample_lines() -> list[str]:
    return [
        line.strip()
        for path in sorted(SAMPLE_TEXT.glob("*.txt"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]


def write_bert_tokenizer(folder: Path, words: int = 400) -> Path:
    """A BertTokenizerFast over the most common words of the sample text (+ punctuation)."""
    from transformers import BertTokenizerFast

    counts = Counter(re.findall(r"[a-z]+", " ".join(sample_lines()).lower()))
    vocab = BERT_SPECIALS + list(".,;:!?'\"-") + ["##s", "##ed", "##ly", "##ing"]
    vocab += [word for word, _ in counts.most_common(words)]
    tokenizer = BertTokenizerFast(
        vocab={token: index for index, token in enumerate(vocab)}, model_max_length=64
    )
    tokenizer.save_pretrained(folder)
    return folder


def write_roberta_tokenizer(folder: Path, vocab_size: int = 600) -> Path:
    """A RobertaTokenizerFast whose byte-level BPE is trained on the sample text."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        sample_lines(), vocab_size=vocab_size, min_frequency=2, special_tokens=ROBERTA_SPECIALS
    )
    folder.mkdir(parents=True, exist_ok=True)
    vocab_file, merges_file = bpe.save_model(str(folder))
    merges = Path(merges_file).read_text(encoding="utf-8").splitlines()[1:]  # after #version
    tokenizer = RobertaTokenizerFast(
        vocab=json.loads(Path(vocab_file).read_text(encoding="utf-8")),
        merges=[tuple(merge.split(" ")) for merge in merges],
        model_max_length=60,
    )
    tokenizer.save_pretrained(folder)
    return folder


def write_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny BertForMaskedLM with its tokenizer, saved in ``folder``."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(write_bert_tokenizer(folder))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), initializer_range=0.2, **TINY_SIZES)
    BertForMaskedLM(config).save_pretrained(folder)
    return folder


def write_tiny_roberta(folder: Path, seed: int = 0) -> Path:
    """A randomly initialised tiny RobertaForMaskedLM with its tokenizer, saved in ``folder``."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForMaskedLM

    tokenizer = AutoTokenizer.from_pretrained(write_roberta_tokenizer(folder))
    torch.manual_seed(seed)
    config = RobertaConfig(
        vocab_size=len(tokenizer),
        initializer_range=0.2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **TINY_SIZES,
    )
    RobertaForMaskedLM(config).save_pretrained(folder)
    return folder
