"""The ``sslcli`` command: every command is listed here; their bodies import what they need.

Nothing heavy (torch, torchvision, transformers) is imported at start-up, so ``--help`` and
``--version`` are instant.
"""

from __future__ import annotations

import os
import traceback
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from sslcli import __version__
from sslcli.cli import (
    augment,
    embed,
    energy,
    export,
    mask_predict,
    models,
    pack,
    sweep,
    train_latent,
    train_mlm,
    train_siamese,
)
from sslcli.cli import eval as evaluate
from sslcli.cli.console import print_error, stderr
from sslcli.errors import SSLError

INTERRUPTED_EXIT_CODE = 130


class _Debug:
    enabled = bool(os.environ.get("SSLCLI_DEBUG"))


class _Group(TyperGroup):
    """Turns :class:`SSLError` into one or two lines and an exit code (a traceback with --debug)."""

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except SSLError as error:
            if _Debug.enabled:
                stderr.print(traceback.format_exc(), markup=False, highlight=False)
            print_error(error)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            stderr.print("interrupted", style="yellow")
            raise typer.Exit(INTERRUPTED_EXIT_CODE) from None


app = typer.Typer(
    cls=_Group,
    name="sslcli",
    help="Self-supervised learning from the command line: masking, augmented views, "
    "siamese and latent-variable training, energies and embeddings.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"sslcli {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_show_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show full tracebacks on errors (or SSLCLI_DEBUG=1).")
    ] = False,
) -> None:
    _Debug.enabled = _Debug.enabled or debug


mask_predict.register(app)
train_mlm.register(app)
augment.register(app)
pack.register(app)
train_siamese.register(app)
train_latent.register(app)
sweep.register(app)
energy.register(app)
embed.register(app)
export.register(app)
evaluate.register(app)
models.register(app)


def main() -> None:
    app()
