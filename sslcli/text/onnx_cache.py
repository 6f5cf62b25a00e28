"""The ONNX fast path of fill-mask: an ONNX copy of a local model in the user's cache, run by
onnxruntime with a ``tokenizers`` tokenizer, so a one-shot fill starts without importing
torch or transformers (whose import alone takes seconds).

The cache lives in ``$XDG_CACHE_HOME/sslcli/onnx`` (else ``~/.cache/sslcli/onnx``), beside
the image cache of ``data.cache.default_cache_dir``. A model's entry is a folder named after
the model's folder and a hash of its files (config, weights, tokenizer files: a retrained
or edited model gets a new entry), written atomically by ``onnx_export.make_entry``:

- ``model.onnx``: ``input_ids`` and ``attention_mask`` in (free batch and sequence axes),
  the logits at the masks out, (masks, vocabulary); its metadata holds the model's facts
  (``backends.ModelFacts``), the mask token's id among them;
- ``tokenizer.json``: the tokenizer transformers loads for the model, as its ``tokenizers``
  backend saves it;
- ``check.json``: how far the ONNX logits lay from torch's on a check batch when the entry
  was made; above ``TOLERANCE``, or with a tokenizer that decodes differently, the entry is
  refused: ``check.json`` says why and holds no model, and transformers runs instead.

This module never imports torch: it only finds, opens and judges entries.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sslcli.engine.onnx import ONNX_EXTRA
from sslcli.errors import runtime_error, usage_error
from sslcli.text.backends import JsonTokens, ModelFacts, onnx_logits
from sslcli.text.fill_mask import MaskFiller
from sslcli.text.models import TextModelSource, resolve_text_model

FORMAT = "sslcli-fill-mask-onnx-v1"
"""Part of every key: change it when entries are made differently for the same model."""
TOLERANCE = 1e-4
"""The largest absolute logit difference from torch an entry may have on the check batch."""
INPUTS = ("input_ids", "attention_mask")
OUTPUT = "logits"
FACTS_KEY = "sslcli.fill_mask.facts"
"""The ONNX metadata key holding the model's :class:`ModelFacts` as JSON."""
MODEL_SUFFIXES = frozenset({".json", ".safetensors", ".bin", ".txt", ".model"})
"""The files of a model folder the key covers: what transformers reads (config, weights,
vocabularies, tokenizer settings); not logs or model cards."""
HASH_CHUNK = 2**22
RUNTIME_PACKAGES = ("onnxruntime", "tokenizers")
"""What the fast path runs with."""
EXPORT_PACKAGES = ("onnx", "onnxscript", "onnxruntime", "tokenizers")
"""What making an entry needs besides torch and transformers (the ``onnx`` extra)."""

Say = Callable[[str], None]


class DamagedEntry(Exception):
    """An entry whose files cannot be read back; the message is one sentence."""


@dataclass(frozen=True)
class OnnxEntry:
    """A model's folder in the ONNX cache."""

    folder: Path

    @property
    def onnx(self) -> Path:
        return self.folder / "model.onnx"

    @property
    def tokenizer(self) -> Path:
        return self.folder / "tokenizer.json"

    @property
    def check(self) -> Path:
        return self.folder / "check.json"


@dataclass(frozen=True)
class Check:
    """The outcome of making an entry."""

    difference: float | None
    """The largest absolute logit difference from torch on the check batch (None when the
    export failed)."""
    refused: str | None
    """Why the entry is not used, in one sentence; None when it is."""

    def closeness(self) -> str:
        """How close to torch a passed check came, in words."""
        return f"logits within {self.difference:.1e} of torch's (at most {TOLERANCE:g})"


def onnx_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/sslcli/onnx``, else ``~/.cache/sslcli/onnx`` (as the image cache of
    ``data.cache.default_cache_dir``, whose ``$SSLCLI_CACHE_DIR`` names the image folder
    alone)."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sslcli" / "onnx"


def entry_for(source: TextModelSource) -> OnnxEntry:
    """The entry of a local model (embedded or folder): its folder's name, for people reading
    the cache, and a hash of its files (the embedded model named or given as a path shares
    one entry)."""
    folder = Path(source.location).resolve()
    return OnnxEntry(onnx_cache_dir() / f"{_slug(folder)}-{_model_key(folder)[:20]}")


def _slug(folder: Path) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", folder.name).strip("-.") or "model"


def _model_key(folder: Path) -> str:
    digest = hashlib.sha256(f"{FORMAT}\n".encode())
    for path in sorted(folder.iterdir()):
        if path.suffix in MODEL_SUFFIXES and path.is_file():
            digest.update(f"{path.name}\0{path.stat().st_size}\n".encode())
            with path.open("rb") as file:
                while chunk := file.read(HASH_CHUNK):
                    digest.update(chunk)
    return digest.hexdigest()


def importable(packages: tuple[str, ...]) -> bool:
    """Whether every package is installed, told without importing any."""
    return all(importlib.util.find_spec(package) is not None for package in packages)


def read_check(entry: OnnxEntry) -> Check | None:
    """The entry's check; None when there is none or it cannot be read."""
    try:
        fields = json.loads(entry.check.read_text(encoding="utf-8"))
        difference = fields["difference"]
        return Check(
            None if difference is None else float(difference),
            None if fields["refused"] is None else str(fields["refused"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def open_fill_mask(entry: OnnxEntry) -> MaskFiller | None:
    """Fill-mask on the entry's ONNX file (onnxruntime, CPU) and tokenizer; None when the
    entry was refused. A damaged or truncated file raises :class:`DamagedEntry`."""
    import onnxruntime

    check = read_check(entry)
    if check is None:
        raise DamagedEntry(f"the cached {entry.check} is missing or damaged")
    if check.refused is not None:
        return None
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # a damaged file is reported below, in one sentence
    # onnxruntime's and tokenizers' errors share no base narrower than Exception
    try:
        session = onnxruntime.InferenceSession(
            str(entry.onnx), options, providers=["CPUExecutionProvider"]
        )
    except Exception:
        raise DamagedEntry(f"onnxruntime cannot load the cached {entry.onnx}") from None
    try:
        facts = ModelFacts.from_json(session.get_modelmeta().custom_metadata_map[FACTS_KEY])
    except (KeyError, ValueError, TypeError):
        raise DamagedEntry(f"the cached {entry.onnx} holds no readable model facts") from None
    if tuple(node.name for node in session.get_inputs()) != INPUTS:
        raise DamagedEntry(f"the cached {entry.onnx} takes other inputs than {', '.join(INPUTS)}")
    try:
        tokens = JsonTokens(entry.tokenizer)
    except Exception:
        raise DamagedEntry(f"the cached {entry.tokenizer} does not parse") from None
    return MaskFiller(onnx_logits(session), tokens, facts)


def fast_fill_mask(name: str, say: Say) -> MaskFiller | None:
    """Fill-mask on the ONNX copy of ``name`` when it can run: onnxruntime and tokenizers
    installed, ``name`` a local model whose entry exists and passed its check. The embedded
    model's entry is made on first need, and a damaged entry made again, when the ``onnx``
    extra is installed; ``say`` is told when an entry is made and why. None: run
    transformers instead."""
    if not importable(RUNTIME_PACKAGES):
        return None
    source = resolve_text_model(name)
    if source.kind == "hub":
        return None
    if source.kind == "folder":
        named = f"{_slug(Path(source.location).resolve())}-*"
        if not any(onnx_cache_dir().glob(named)):
            return None  # none prepared under this folder's name: no need to hash its weights
    entry = entry_for(source)
    if not entry.folder.exists():
        if source.kind != "embedded" or not importable(EXPORT_PACKAGES):
            return None
        say(f"making an ONNX copy of {name} for fast starts, once, in {entry.folder}")
    else:
        try:
            return open_fill_mask(entry)
        except DamagedEntry as error:
            if not importable(EXPORT_PACKAGES):
                say(f"{error}: transformers runs instead ({ONNX_EXTRA} to make it again)")
                return None
            say(f"{error}: making it again")
    from sslcli.text.onnx_export import make_entry  # torch and transformers: slow to import

    check = make_entry(name, entry)
    say(check.refused or f"ONNX copy made, {check.closeness()}")
    return open_fill_mask(entry)


def prepare(name: str, say: Say) -> OnnxEntry:
    """Make the entry of ``name``, or keep the one there when it opens, for
    ``mask-predict --prepare-onnx``. A hub model is refused, and so is an entry that fails
    its check (a refused entry is made again: torch or the exporter may have changed)."""
    source = resolve_text_model(name)
    if source.kind == "hub":
        raise usage_error(
            f"--prepare-onnx takes a local model, and {source.location} is a hub id",
            "save it to a folder first (save_pretrained), then give that folder",
        )
    entry = entry_for(source)
    if entry.folder.exists():
        try:
            ready = open_fill_mask(entry)
        except DamagedEntry as error:
            say(f"{error}: making it again")
        else:
            check = read_check(entry)
            if ready is not None and check is not None:
                say(f"the ONNX copy of {name} is ready in {entry.folder}, {check.closeness()}")
                return entry
    from sslcli.text.onnx_export import make_entry

    check = make_entry(name, entry)
    if check.refused is not None:
        raise runtime_error(check.refused)
    say(f"ONNX copy of {name} made in {entry.folder}, {check.closeness()}")
    return entry
