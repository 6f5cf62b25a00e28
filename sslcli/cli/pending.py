"""Commands that are planned but not built yet: listed in --help, and honest when run."""

from __future__ import annotations

from collections.abc import Callable

import typer

from sslcli import __version__
from sslcli.errors import usage_error

PENDING = {
    "mask-predict": "Fill [MASK] in a text with a masked-language model (BERT-style).",
    "train-mlm": "Train a masked-language model on your own text.",
}


def _not_built(name: str) -> Callable[[], None]:
    def command() -> None:
        raise usage_error(f"'{name}' is not built yet in sslcli {__version__}")

    return command


def register(app: typer.Typer) -> None:
    settings = {"allow_extra_args": True, "ignore_unknown_options": True}
    for name, summary in PENDING.items():
        app.command(name, help=f"{summary} [not built yet]", context_settings=settings)(
            _not_built(name)
        )
