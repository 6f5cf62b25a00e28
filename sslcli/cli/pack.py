"""``sslcli pack``: a folder of images packed into WebDataset tar shards, to stream from."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr
from sslcli.cli.model_options import AsJson, CacheDir, Strict
from sslcli.cli.training import Size, StoreSize


def pack_command(
    data: Annotated[
        Path,
        typer.Argument(
            help="Folder of images (class sub-folders are packed as labels).", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(help="Folder the shards and their shards.json go to.", show_default=False),
    ],
    size: Size = 224,
    store_size: StoreSize = None,
    samples_per_shard: Annotated[
        int, typer.Option(help="Images per tar shard (the last shard holds the rest).")
    ] = 1000,
    cache_dir: CacheDir = None,
    strict: Strict = False,
    as_json: AsJson = False,
) -> None:
    """Pack a folder of images into WebDataset tar shards that train-siamese and train-latent
    stream (from a local folder, or any URL with --shard-url)."""
    from sslcli.data.cache import default_cache_dir
    from sslcli.data.shards import pack
    from sslcli.data.store import default_store_size
    from sslcli.engine.progress import progress_bar

    resolution = store_size or default_store_size(size)
    with progress_bar("store", None, "img", not as_json, transient=True) as bar:
        packed = pack(
            data,
            out,
            resolution,
            cache_dir or default_cache_dir(),
            samples_per_shard,
            strict,
            bar.advance,
        )
    manifest = packed.manifest
    skipped = [failure.message for failure in packed.failures]
    summary = {
        "manifest": str(manifest.path),
        "images": manifest.count,
        "shards": len(manifest.shards),
        "written": packed.written,
        "bytes": sum(shard.bytes for shard in manifest.shards),
        "resolution": manifest.resolution,
        "classes": manifest.classes,
        "skipped": skipped,
    }
    if as_json:
        print_json(summary)
        return
    table = Table(title="pack", title_justify="left", show_header=False)
    table.add_row("manifest", summary["manifest"])
    table.add_row("images", f"{manifest.count} at a shorter side of at most {resolution} px")
    kept = summary["shards"] - packed.written
    written = f"{packed.written} written" + (f", {kept} already identical" if kept else "")
    table.add_row("shards", f"{summary['shards']} ({written}), {summary['bytes'] / 2**20:.1f} MiB")
    if manifest.classes:
        table.add_row("classes", f"{len(manifest.classes)}")
    if skipped:
        table.add_row("skipped", f"{len(skipped)}: " + "; ".join(skipped[:5]))
    stderr.print(table)


def register(app: typer.Typer) -> None:
    app.command("pack")(pack_command)
