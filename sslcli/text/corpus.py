"""A training corpus: .txt files tokenized, concatenated, cut into blocks of ``seq_len``
tokens (each wrapped in the tokenizer's special tokens), a held-out share set aside."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sslcli.engine.progress import progress_bar
from sslcli.errors import usage_error
from sslcli.text.loading import quiet_transformers, special_tokens_around

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

TEXT_SUFFIX = ".txt"
LINES_PER_CALL = 2000


@dataclass(frozen=True)
class Blocks:
    train: torch.Tensor
    """(blocks, seq_len) int32 token ids."""
    heldout: torch.Tensor
    """(blocks, seq_len) int32 token ids, never trained on."""


def corpus_files(path: Path) -> list[Path]:
    """A .txt file, or every .txt file under a folder (sorted); a clear error otherwise."""
    if path.is_file():
        return [path]
    if not path.exists():
        raise usage_error(f"corpus {path} does not exist", "give a .txt file or a folder of them")
    files = sorted(file for file in path.rglob(f"*{TEXT_SUFFIX}") if file.is_file())
    if not files:
        raise usage_error(f"no {TEXT_SUFFIX} files in {path}", "give a folder of UTF-8 text files")
    return files


def corpus_digest(files: list[Path]) -> str:
    """SHA-256 of the files' contents in order: a resumed run must train on the same text."""
    digest = hashlib.sha256()
    for file in files:
        digest.update(file.read_bytes())
    return digest.hexdigest()


def tokenize_files(
    files: list[Path], tokenizer: PreTrainedTokenizerBase, show_progress: bool = True
) -> torch.Tensor:
    """All non-empty lines of the files, tokenized without special tokens, concatenated."""
    import torch

    pieces: list[torch.Tensor] = []
    total = sum(file.stat().st_size for file in files)
    with progress_bar("tokenize", total, "B", enabled=show_progress, transient=True) as bar:
        for file in files:
            raw = file.read_bytes()
            lines = [line for line in decode_utf8(raw, file).splitlines() if line.strip()]
            for start in range(0, len(lines), LINES_PER_CALL):
                with quiet_transformers():
                    encoded = tokenizer(
                        lines[start : start + LINES_PER_CALL], add_special_tokens=False
                    )["input_ids"]
                pieces.extend(torch.tensor(ids, dtype=torch.int32) for ids in encoded if ids)
            bar.advance(len(raw))
    return torch.cat(pieces) if pieces else torch.zeros(0, dtype=torch.int32)


def decode_utf8(raw: bytes, file: Path) -> str:
    """The text of ``file``; a usage error naming the first bad byte if it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise usage_error(
            f"{file} is not UTF-8 text (byte {error.start})", "convert it to UTF-8"
        ) from error


def cut_blocks(ids: torch.Tensor, seq_len: int, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """(blocks, seq_len) ids: consecutive runs of text tokens inside the special tokens; the
    tail that does not fill a block is dropped."""
    import torch

    prefix, suffix = special_tokens_around(tokenizer)
    content = seq_len - len(prefix) - len(suffix)
    if content < 2:
        raise usage_error(f"--seq-len {seq_len} is too short", "use 16 tokens or more")
    count = len(ids) // content
    body = ids[: count * content].reshape(count, content)
    return torch.cat(
        [
            torch.tensor(prefix, dtype=torch.int32).expand(count, -1),
            body,
            torch.tensor(suffix, dtype=torch.int32).expand(count, -1),
        ],
        dim=1,
    )


def split_heldout(
    blocks: torch.Tensor, fraction: float, limit: int, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded random ``fraction`` of the blocks (at most ``limit``, at least 1) held out."""
    import torch

    if not 0 < fraction < 1:
        raise usage_error(f"--heldout {fraction} must be between 0 and 1")
    count = min(limit, max(1, round(len(blocks) * fraction)))
    if len(blocks) < count + 1:
        raise usage_error(
            f"the corpus gives only {len(blocks)} blocks: too little to train and hold out",
            "give more text or a shorter --seq-len",
        )
    order = torch.randperm(len(blocks), generator=torch.Generator().manual_seed(seed))
    return blocks[order[count:].sort().values], blocks[order[:count].sort().values]


def build_blocks(
    files: list[Path],
    tokenizer: PreTrainedTokenizerBase,
    seq_len: int,
    heldout_fraction: float,
    heldout_limit: int,
    seed: int,
    show_progress: bool = True,
) -> Blocks:
    ids = tokenize_files(files, tokenizer, show_progress)
    train, heldout = split_heldout(
        cut_blocks(ids, seq_len, tokenizer), heldout_fraction, heldout_limit, seed
    )
    return Blocks(train, heldout)
