"""The text-model registry: the embedded default and short names for well-known
masked-language models.

``--model`` for text commands takes a registry name, a local folder holding a saved model,
or a hub id of the form ``owner/name``; anything else is an unknown name. The default,
``sslcli-minilm-mlm``, ships inside the package (``sslcli/assets/``) and needs no network.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sslcli.engine.hub import looks_like_hub_id, looks_like_path
from sslcli.errors import usage_error
from sslcli.registry import Registry

TEXT_MODELS: Registry[str] = Registry("text model")

DEFAULT_TEXT_MODEL = "sslcli-minilm-mlm"
ASSETS = Path(__file__).resolve().parent.parent / "assets"
_EMBEDDED = {
    DEFAULT_TEXT_MODEL: (
        ASSETS / "minilm-mlm",
        "embedded default (ships with sslcli, offline): all-MiniLM-L6-v2 encoder + MLM head "
        "trained by sslcli train-mlm on public-domain English (22.7M parameters, [MASK])",
    ),
}

_ALIASES = {
    "bert": ("bert-base-uncased", "BERT base, uncased (110M parameters, [MASK])"),
    "bert-cased": ("bert-base-cased", "BERT base, cased (110M parameters, [MASK])"),
    "bert-large": ("bert-large-uncased", "BERT large, uncased (340M parameters, [MASK])"),
    "distilbert": ("distilbert-base-uncased", "DistilBERT, uncased (66M parameters, [MASK])"),
    "roberta": ("roberta-base", "RoBERTa base (125M parameters, <mask>)"),
    "roberta-large": ("roberta-large", "RoBERTa large (355M parameters, <mask>)"),
    "distilroberta": ("distilroberta-base", "DistilRoBERTa (82M parameters, <mask>)"),
    "albert": ("albert-base-v2", "ALBERT base v2 (12M parameters, [MASK])"),
}


def _register_aliases() -> None:
    for name, (folder, description) in _EMBEDDED.items():
        TEXT_MODELS.add(name, lambda folder=folder: str(folder), description)
    for alias, (hub, description) in _ALIASES.items():
        TEXT_MODELS.add(alias, lambda hub=hub: hub, f"{hub}: {description}")


_register_aliases()


@dataclass(frozen=True)
class TextModelSource:
    kind: str
    """``embedded`` (shipped with sslcli), ``folder`` (a saved model on disk) or ``hub`` (an
    id to load from a model hub)."""
    location: str


def resolve_text_model(name: str) -> TextModelSource:
    """What ``--model NAME`` refers to, without loading anything."""
    if name in _EMBEDDED:
        return TextModelSource("embedded", TEXT_MODELS.create(name))
    if name in TEXT_MODELS:
        return TextModelSource("hub", TEXT_MODELS.create(name))
    if Path(name).is_dir():
        return TextModelSource("folder", str(Path(name)))
    if name in {hub for hub, _ in _ALIASES.values()} or looks_like_hub_id(name):
        return TextModelSource("hub", name)
    if looks_like_path(name):
        raise usage_error(f"model folder {name} does not exist", "check the path")
    raise TEXT_MODELS.unknown(name, hint="or give a local model folder or a hub id owner/name")
