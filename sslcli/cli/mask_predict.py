"""``sslcli mask-predict``: ranked guesses for every [MASK] in a text."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from sslcli.cli.console import print_json, stderr
from sslcli.cli.text_options import Device, Gpus, device_for
from sslcli.errors import usage_error
from sslcli.text.models import DEFAULT_TEXT_MODEL

if TYPE_CHECKING:
    from sslcli.text.fill_mask import FillResult, MaskFiller

STDIN = "-"
BAR_WIDTH = 20


def mask_predict(
    texts: Annotated[
        list[str] | None,
        typer.Argument(
            help="Texts with [MASK] (or the model's own mask token); - reads stdin, one text "
            "per line.",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            help="Read texts from this file (- for stdin), one per line; blank lines are skipped.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str,
        typer.Option(
            help="Registry name (sslcli models), local folder or hub id owner/name; the default "
            "ships with sslcli and works offline."
        ),
    ] = DEFAULT_TEXT_MODEL,
    top_k: Annotated[int, typer.Option(help="Guesses shown per mask.")] = 5,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass.")] = 32,
    gpus: Gpus = None,
    device: Device = None,
    as_json: Annotated[bool, typer.Option("--json", help="Write the results to stdout.")] = False,
    onnx: Annotated[
        bool,
        typer.Option(
            "--onnx/--no-onnx",
            help="On the CPU, fill from the model's ONNX copy in the cache with onnxruntime, "
            "without starting torch: the embedded model's copy is made on first use, a "
            "folder's by --prepare-onnx (making one needs sslcli\\[onnx]). --no-onnx: always "
            "transformers.",
        ),
    ] = True,
    prepare_onnx: Annotated[
        bool,
        typer.Option(
            "--prepare-onnx",
            help="Make the ONNX copy of --model in ~/.cache/sslcli/onnx ($XDG_CACHE_HOME "
            "respected), checked against torch, then fill the texts given, if any.",
        ),
    ] = False,
) -> None:
    """Fill [MASK] in a text with a masked-language model.

    With several masks, each mask's guesses come from one pass with all masks in place
    (predicted independently); the filled text fills them jointly, most confident mask
    first, running the model again after each. Texts longer than the model reads are cut
    to a window around their masks.

    On the CPU a one-shot fill starts in a fraction of a second from the model's ONNX copy
    (see --onnx); elsewhere, and for hub models, transformers runs it.
    """
    from sslcli.engine.progress import progress_bar

    prepare_only = prepare_onnx and not texts and file is None
    inputs = [] if prepare_only else _read_inputs(texts or [], file)
    if prepare_onnx:
        from sslcli.text.onnx_cache import prepare

        prepare(model, _note)
    if prepare_only:
        return
    fill = _fill_mask(model, gpus, device, onnx)
    results: list[FillResult] = []
    show = not as_json and len(inputs) > batch_size
    with progress_bar("mask-predict", len(inputs), "text", enabled=show, transient=True) as bar:
        for batch in fill.predict(inputs, top_k=top_k, batch_size=batch_size):
            results.extend(batch)
            bar.advance(len(batch))
    if as_json:
        print_json({"model": model, "results": [result.as_dict() for result in results]})
        return
    for result in results:
        _print_result(result, show_text=len(results) > 1)


def _fill_mask(model: str, gpus: int | None, device: str | None, onnx: bool) -> MaskFiller:
    """The ONNX fast path when it can be taken (onnx_cache.fast_fill_mask), else the model
    loaded with transformers on the device asked."""
    from sslcli.text.device import asks_for_cpu

    if onnx and asks_for_cpu(gpus, device):
        from sslcli.text.onnx_cache import fast_fill_mask

        fast = fast_fill_mask(model, _note)
        if fast is not None:
            return fast
    from sslcli.text.fill_mask import FillMask
    from sslcli.text.loading import load_masked_lm

    loaded = load_masked_lm(model, device_for(gpus, device))
    return FillMask(loaded.model, loaded.tokenizer)


def _note(line: str) -> None:
    stderr.print(Text(line, style="dim"), soft_wrap=True)


def _read_inputs(texts: list[str], file: str | None) -> list[str]:
    from sslcli.text.corpus import decode_utf8

    if file is not None and texts:
        raise usage_error("give texts or --file, not both")
    if file is None and texts != [STDIN]:
        if not texts:
            raise usage_error(
                "no text given", 'e.g. sslcli mask-predict "This is [MASK] cat." (or --file F)'
            )
        return texts
    source = file if file is not None else STDIN
    if source == STDIN:
        content = sys.stdin.read()
    else:
        path = Path(source)
        if not path.is_file():
            raise usage_error(f"--file {source} does not exist", "give a text file, or - for stdin")
        content = decode_utf8(path.read_bytes(), path)
    lines = [line for line in content.splitlines() if line.strip()]
    if not lines:
        raise usage_error(f"no text in {'stdin' if source == STDIN else source}")
    return lines


def _print_result(result: FillResult, show_text: bool) -> None:
    if show_text:
        stderr.print(Text(result.text, style="bold"), soft_wrap=True)
    count = len(result.guesses)
    if count > 1:
        stderr.print(
            Text(f"{count} masks, each predicted independently (the others masked)", "dim")
        )
    for number, guesses in enumerate(result.guesses, 1):
        title = "mask" if count == 1 else f"mask {number} of {count}"
        table = Table(title=title, title_justify="left")
        table.add_column("#", justify="right", style="dim")
        table.add_column("token", style="bold cyan")
        table.add_column("probability", justify="right")
        table.add_column("")
        for rank, guess in enumerate(guesses, 1):
            bar = "█" * round(guess.score * BAR_WIDTH)
            table.add_row(str(rank), Text(guess.token.strip()), f"{guess.score:.3f}", bar)
        stderr.print(table)
    how = "" if count == 1 else f", joint fill, most confident first, p = {result.filled_score:.3g}"
    cut = " (text cut to a window around its masks)" if result.truncated else ""
    stderr.print(Text.assemble((f"filled{how}: ", "green"), result.filled, cut), soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("mask-predict")(mask_predict)
