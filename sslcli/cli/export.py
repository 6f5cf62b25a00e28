"""``sslcli export``: a trained encoder for torchvision, timm, safetensors or ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr
from sslcli.cli.model_options import AsJson
from sslcli.errors import usage_error


def export(
    run: Annotated[
        Path | None,
        typer.Argument(
            help="Run folder, checkpoint or encoder folder \\[default: the newest run under "
            "./runs].",
            show_default=False,
        ),
    ] = None,
    format_: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="torchvision (ResNets: a state_dict), timm (ViTs and timm:NAME: timm's "
            "local-dir export), safetensors (the backbone, loadable back by sslcli) or onnx "
            "(any space, checked against torch with onnxruntime).",
        ),
    ] = "safetensors",
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="The folder to write (weights and a README.md card)."),
    ] = Path("export"),
    space: Annotated[
        str,
        typer.Option(
            help="backbone (the features used downstream; a ViT's class token), projector "
            "(after the projection head) or patch (a ViT's patch tokens averaged); only "
            "onnx carries the last two."
        ),
    ] = "backbone",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing --out folder.")] = False,
    as_json: AsJson = False,
) -> None:
    """Write a trained encoder where other tools load it, with a model card."""
    from sslcli.inference.export import export_model
    from sslcli.runs.layout import newest_run, run_record
    from sslcli.runs.loading import load_model

    if run is not None and not run.exists():
        raise usage_error(f"no such run folder: {run}", "give a run, checkpoint or encoder folder")
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not overwrite:
        raise usage_error(f"{out} already exists", "pass --overwrite to replace it")
    source = run if run is not None else newest_run(Path("runs"))
    model = load_model(str(source))
    if not as_json:
        stderr.print(f"model: {model.description}", soft_wrap=True)
    exported = export_model(model, format_, space, out, str(source), run_record(source))
    result = {
        "folder": str(exported.folder),
        "format": exported.format,
        "space": exported.space,
        "dimensions": exported.dimensions,
        "files": exported.files,
        "model": model.description,
    }
    if exported.onnx_difference is not None:
        result["onnx_largest_difference"] = exported.onnx_difference
    if as_json:
        print_json(result)
        return
    table = Table(title="export", title_justify="left", show_header=False)
    table.add_row("written", f"{result['folder']}/ ({', '.join(exported.files)})")
    table.add_row("format", f"{exported.format}, {exported.space} space, {exported.dimensions}-d")
    if exported.onnx_difference is not None:
        table.add_row("checked", f"onnxruntime vs torch: {exported.onnx_difference:.2g} at most")
    table.add_row("load it", f"see {exported.folder / 'README.md'}")
    stderr.print(table)


def register(app: typer.Typer) -> None:
    app.command("export")(export)
