"""``sslcli models``: what can be named on the command line (backbones, text models, ...)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr
from sslcli.registry import Registry


def _registries() -> dict[str, Registry]:
    from sslcli.augment.presets import PRESETS
    from sslcli.methods import METHODS
    from sslcli.models.backbones import BACKBONES
    from sslcli.text.models import TEXT_MODELS

    return {
        "SSL methods": METHODS,
        "augmentation presets": PRESETS,
        "backbones": BACKBONES,
        "text models": TEXT_MODELS,
    }


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Write JSON to stdout.")] = False,
) -> None:
    """List the names --method, --preset, --backbone and --model accept."""
    registries = _registries()
    if as_json:
        print_json(
            {
                title.lower().replace(" ", "_"): [
                    {"name": entry.name, "description": entry.description} for entry in registry
                ]
                for title, registry in registries.items()
            }
        )
        return
    for title, registry in registries.items():
        table = Table(title=title[0].upper() + title[1:], title_justify="left")
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("description")
        for entry in registry:
            table.add_row(entry.name, entry.description)
        stderr.print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
