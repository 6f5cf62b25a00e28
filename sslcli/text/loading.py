"""Load a masked-language model and its tokenizer from what ``--model``/``--init`` names.

Loading never runs code from a model folder (no ``trust_remote_code``). Transformers' own
load reports and progress bars are silenced: sslcli says what matters in one sentence.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sslcli.engine.hub import hub_unreachable
from sslcli.errors import SSLError, runtime_error, usage_error
from sslcli.text.head import HEAD_ATTRIBUTES
from sslcli.text.models import TextModelSource, resolve_text_model

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    source: TextModelSource
    missing_head: bool
    """True when the weights held no prediction head (it was freshly initialised)."""


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' warnings, load reports and progress bars for a block."""
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def load_tokenizer(name: str) -> PreTrainedTokenizerBase:
    """The tokenizer ``name`` refers to (registry name, folder or hub id)."""
    from transformers import AutoTokenizer

    source = resolve_text_model(name)
    with _load_errors(name, source), quiet_transformers():
        local = _cache_only(source)
        return AutoTokenizer.from_pretrained(source.location, local_files_only=local)


def special_tokens_around(tokenizer: PreTrainedTokenizerBase) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after one text ([CLS] ... [SEP])."""
    ids = tokenizer(tokenizer.mask_token)["input_ids"]
    index = ids.index(tokenizer.mask_token_id)
    return ids[:index], ids[index + 1 :]


def special_token_ids(tokenizer: PreTrainedTokenizerBase, size: int) -> list[int]:
    """The ids of the tokenizer's special tokens ([CLS], [SEP], [PAD], [UNK], [MASK], ...)
    below ``size``."""
    return [index for index in tokenizer.all_special_ids if index < size]


def position_count(model: PreTrainedModel) -> int | None:
    """Tokens the model's position table holds (RoBERTa's starts after the padding index);
    None when its config states no table size."""
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions is None:
        return None
    embeddings = getattr(model.base_model, "embeddings", None)
    return positions - (getattr(embeddings, "padding_idx", -1) + 1)


def load_masked_lm(
    name: str, device: str | torch.device = "cpu", *, require_head: bool = True
) -> LoadedModel:
    """Model (float32, eval mode, on ``device``) and tokenizer; with ``require_head`` a model
    whose weights hold no prediction head is refused instead of given a random one."""
    import torch
    from transformers import AutoModelForMaskedLM

    source = resolve_text_model(name)
    if source.kind == "folder" and not (Path(source.location) / "config.json").is_file():
        raise usage_error(
            f"{source.location} does not hold a model: it has no config.json",
            "a model folder holds config.json, the weights and the tokenizer (save_pretrained "
            "writes them)",
        )
    tokenizer = load_tokenizer(name)
    if tokenizer.mask_token_id is None:
        raise usage_error(f"{name} has no mask token", "choose a masked-language model")
    with _load_errors(name, source), quiet_transformers():
        model, info = AutoModelForMaskedLM.from_pretrained(
            source.location,
            dtype=torch.float32,
            output_loading_info=True,
            local_files_only=_cache_only(source),
        )
    missing_head = _head_is_missing(info["missing_keys"])
    if missing_head and require_head:
        raise usage_error(
            f"{name} has no masked-language head (its weights are an encoder only)",
            f"train one first: sslcli train-mlm CORPUS --init {name} --out DIR",
        )
    return LoadedModel(model.to(device).eval(), tokenizer, source, missing_head)


def _cache_only(source: TextModelSource) -> bool:
    """A hub model is read from the local cache alone when the hub cannot be asked now."""
    return source.kind == "hub" and hub_unreachable(source.location)


def _head_is_missing(missing_keys: set[str]) -> bool:
    return any(key.split(".")[0] in HEAD_ATTRIBUTES for key in missing_keys)


@contextlib.contextmanager
def _load_errors(name: str, source: TextModelSource) -> Iterator[None]:
    """Turn transformers' loading failures into one sentence and a hint."""
    try:
        yield
    except SSLError:
        raise
    except OSError as error:
        raise _explain(name, source, error) from error
    except (ValueError, KeyError) as error:
        raise usage_error(
            f"cannot load {name} as a masked-language model: {_first_line(error)}",
            "give a folder written by save_pretrained (config.json, weights, tokenizer)",
        ) from error


def _explain(name: str, source: TextModelSource, error: OSError) -> SSLError:
    if source.kind == "embedded":
        return runtime_error(
            f"the embedded model {name} is damaged or missing from this installation",
            "reinstall sslcli",
        )
    if source.kind == "folder":
        return usage_error(
            f"{source.location} does not hold a complete model ({_first_line(error)})",
            "a model folder holds config.json, the weights and the tokenizer files",
        )
    from huggingface_hub.errors import LocalEntryNotFoundError

    if isinstance(error.__cause__, LocalEntryNotFoundError) or "connect" in str(error):
        return runtime_error(
            f"cannot fetch {source.location}: the model hub is unreachable and the model is "
            "not in the local cache",
            "connect to the network (and unset HF_HUB_OFFLINE), or use the default model "
            "or a local folder",
        )
    return usage_error(
        f"{source.location} is not a model on the model hub: {_first_line(error)}",
        "check the name, or give a local folder",
    )


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
