"""The text-model registry: short names for well-known masked-language models.

``--model`` for text commands takes a registry name, a local folder holding a saved model,
or a hub id of the form ``owner/name``; anything else is an unknown name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sslcli.errors import usage_error
from sslcli.registry import Registry

TEXT_MODELS: Registry[str] = Registry("text model")

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
    for alias, (hub, description) in _ALIASES.items():
        TEXT_MODELS.add(alias, lambda hub=hub: hub, f"{hub}: {description}")


_register_aliases()


@dataclass(frozen=True)
class TextModelSource:
    kind: str
    """``folder`` (a saved model on disk) or ``hub`` (an id to load from a model hub)."""
    location: str


def resolve_text_model(name: str) -> TextModelSource:
    """What ``--model NAME`` refers to, without loading anything."""
    if name in TEXT_MODELS:
        return TextModelSource("hub", TEXT_MODELS.create(name))
    if Path(name).is_dir():
        return TextModelSource("folder", str(Path(name)))
    if name in {hub for hub, _ in _ALIASES.values()} or _looks_like_hub_id(name):
        return TextModelSource("hub", name)
    if name.startswith((".", "/", "~")) or name.endswith("/"):
        raise usage_error(f"model folder {name} does not exist", "check the path")
    raise TEXT_MODELS.unknown(name, hint="or give a local model folder or a hub id owner/name")


def _looks_like_hub_id(name: str) -> bool:
    owner, slash, model = name.partition("/")
    return bool(slash and owner and model and "/" not in model and not Path(name).exists())
