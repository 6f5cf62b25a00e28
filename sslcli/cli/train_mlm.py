"""``sslcli train-mlm``: train a masked-language model on your own text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from sslcli.cli.console import print_json, stderr
from sslcli.cli.model_options import Threads
from sslcli.cli.text_options import Device, Gpus, device_for

if TYPE_CHECKING:
    from sslcli.text.train_mlm import MLMConfig, MLMResult


def train_mlm(
    corpus: Annotated[
        Path,
        typer.Argument(
            help="A UTF-8 .txt file, or a folder of them (searched recursively).",
            show_default=False,
        ),
    ],
    init: Annotated[
        str,
        typer.Option(
            help="Start from: a masked-language model (registry name, folder or hub id), an "
            "encoder without a head (a fresh head is added), or a size trained from scratch: "
            "tiny, mini, small (needs --tokenizer).",
        ),
    ] = "sslcli-minilm-mlm",
    tokenizer: Annotated[
        str | None,
        typer.Option(help="Tokenizer for --init tiny|mini|small (model name or folder)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Run folder; the trained model is saved in it "
            "\\[default: with --resume, its run].",
            show_default=False,
        ),
    ] = None,
    steps: Annotated[
        int | None,
        typer.Option(help="Train up to this step (cosine decay to 0 at it).", show_default=False),
    ] = None,
    minutes: Annotated[
        float | None,
        typer.Option(
            help="Train for this many minutes of this invocation (constant lr after warm-up "
            "unless --steps is given).",
            show_default=False,
        ),
    ] = None,
    mlm_probability: Annotated[
        float,
        typer.Option(help="Share of tokens predicted (of them 80% masked, 10% random, 10% kept)."),
    ] = 0.15,
    whole_word: Annotated[
        bool, typer.Option("--whole-word", help="Mask whole words, not word pieces.")
    ] = False,
    seq_len: Annotated[int, typer.Option(help="Tokens per block (special tokens included).")] = 128,
    batch_size: Annotated[int, typer.Option(help="Blocks per step.")] = 32,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 1e-4,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay (matrices only).")] = 0.01,
    warmup_steps: Annotated[int, typer.Option(help="Linear warm-up steps.")] = 100,
    freeze_word_embeddings: Annotated[
        bool,
        typer.Option(
            "--freeze-word-embeddings",
            help="Keep the word embeddings (and the tied decoder) fixed.",
        ),
    ] = False,
    heldout: Annotated[float, typer.Option(help="Share of blocks held out for accuracy.")] = 0.02,
    heldout_blocks: Annotated[int, typer.Option(help="At most this many held-out blocks.")] = 256,
    eval_every: Annotated[int, typer.Option(help="Steps between held-out evaluations.")] = 200,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 500,
    export_dtype: Annotated[
        str, typer.Option(help="Precision of the saved model: fp32, fp16 or bf16.")
    ] = "fp32",
    resume: Annotated[
        Path | None,
        typer.Option(help="Continue a run: its folder or one of its checkpoint folders."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for new weights, data order and masks.")] = 0,
    gpus: Gpus = None,
    device: Device = None,
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="Write the result to stdout.")] = False,
) -> None:
    """Train a masked-language model (BERT's objective) on your own text."""
    from sslcli.engine.runtime import set_threads
    from sslcli.text.train_mlm import MLMConfig, claimed_run
    from sslcli.text.train_mlm import train_mlm as run_training

    config = MLMConfig(
        corpus=str(corpus),
        init=init,
        tokenizer=tokenizer,
        seq_len=seq_len,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        mlm_probability=mlm_probability,
        whole_words=whole_word,
        freeze_word_embeddings=freeze_word_embeddings,
        steps=steps,
        minutes=minutes,
        seed=seed,
        heldout=heldout,
        heldout_blocks=heldout_blocks,
        eval_every=eval_every,
        checkpoint_every=checkpoint_every,
        export_dtype=export_dtype,
        device=device_for(gpus, device),
    )
    config.validate()
    used_threads = set_threads(threads)
    with claimed_run(out, resume) as (run_dir, checkpoint):
        if not as_json:
            _print_settings(config, run_dir, checkpoint)
        result = run_training(
            config,
            run_dir,
            checkpoint,
            show_progress=not as_json,
            announce=None if as_json else lambda line: stderr.print(line, soft_wrap=True),
        )
    if as_json:
        print_json(result.as_dict() | {"model": str(run_dir), "threads": used_threads})
        return
    _print_result(result, run_dir)
    if result.interrupted or (steps is not None and result.step < steps):
        stderr.print(
            f"stopped at step {result.step}; continue with: {_resume_command(config, run_dir)}",
            soft_wrap=True,
        )


def _resume_command(config: MLMConfig, run_dir: Path) -> str:
    """The command that continues this run: every setting a resume must repeat."""
    options = {
        "--init": config.init,
        "--tokenizer": config.tokenizer,
        "--steps": config.steps,
        "--minutes": config.minutes,
        "--seq-len": config.seq_len,
        "--batch-size": config.batch_size,
        "--lr": config.lr,
        "--weight-decay": config.weight_decay,
        "--warmup-steps": config.warmup_steps,
        "--mlm-probability": config.mlm_probability,
        "--heldout": config.heldout,
        "--heldout-blocks": config.heldout_blocks,
        "--eval-every": config.eval_every,
        "--checkpoint-every": config.checkpoint_every,
        "--export-dtype": config.export_dtype,
        "--seed": config.seed,
    }
    flags = {
        "--whole-word": config.whole_words,
        "--freeze-word-embeddings": config.freeze_word_embeddings,
    }
    words = ["sslcli train-mlm", config.corpus, "--resume", str(run_dir)]
    words += [f"{name} {value}" for name, value in options.items() if value is not None]
    words += [name for name, on in flags.items() if on]
    return " ".join(words)


def _print_settings(config: MLMConfig, run_dir: Path, checkpoint: Path | None) -> None:
    table = Table(title="train-mlm", title_justify="left", show_header=False)
    table.add_row("corpus", config.corpus)
    table.add_row(
        "start", config.init + (f" (tokenizer {config.tokenizer})" if config.tokenizer else "")
    )
    table.add_row(
        "masking",
        f"{config.mlm_probability:.0%} of the "
        + ("words" if config.whole_words else "tokens")
        + ": 80% mask, 10% random, 10% kept",
    )
    table.add_row(
        "batch", f"{config.batch_size} blocks x {config.seq_len} tokens on {config.device}"
    )
    length = " and ".join(
        part
        for part in (
            f"{config.steps} steps" if config.steps else "",
            f"{config.minutes:g} minutes" if config.minutes else "",
        )
        if part
    )
    table.add_row(
        "optimiser", f"AdamW, lr {config.lr:g}, {config.warmup_steps} warm-up steps; {length}"
    )
    table.add_row(
        "run folder", str(run_dir) + (f" (resuming {checkpoint.name})" if checkpoint else "")
    )
    stderr.print(table)


def _print_result(result: MLMResult, run_dir: Path) -> None:
    table = Table(title="result", title_justify="left", show_header=False)
    table.add_row("steps", str(result.step))
    table.add_row("blocks", f"{result.train_blocks} training, {result.heldout_blocks} held out")
    for name in ("loss", "heldout_loss", "heldout_accuracy", "tokens_per_s"):
        value = getattr(result, name)
        if value is not None:
            table.add_row(name.replace("_", " "), f"{value:.4g}")
    if result.heldout_accuracy is None:
        table.add_row("heldout", "not measured: the held-out masks hide no token (raise --heldout)")
    table.add_row("model", f"{run_dir}  (sslcli mask-predict --model {run_dir} TEXT)")
    stderr.print(table)


def register(app: typer.Typer) -> None:
    app.command("train-mlm")(train_mlm)
