"""Commands that are planned but not built yet: listed in --help, and honest when run."""

from __future__ import annotations

from collections.abc import Callable

import typer

from sslcli import __version__
from sslcli.errors import usage_error

PENDING = {
    "train-latent": "Train a latent-variable predictive model (no contrastive samples).",
    "energy": "Energy F(x, y) of image pairs under a trained model (low = compatible).",
    "embed": "Write the embeddings of a folder of images, with nearest neighbours.",
    "eval": "Evaluate an encoder on a labelled folder (kNN, linear probe, collapse).",
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
