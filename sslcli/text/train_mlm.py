"""Masked-language-model training (``sslcli train-mlm``): BERT's recipe on your own text.

The corpus is cut into blocks of ``seq_len`` tokens; each step draws ``batch_size`` blocks
in a seeded per-epoch order, masks them (15%, 80/10/10) with a generator seeded by the step,
and takes an AdamW step (gradient norm clipped to 1). The loss and the predictions are
computed at the masked positions only. A held-out share of the blocks, masked once with a
fixed seed, gives the masked-token accuracy.

The run folder holds ``train_mlm.json`` (settings), ``metrics.jsonl``, ``checkpoints/``
(atomic, the newest two) and the model itself, written with ``save_pretrained`` (config,
weights, tokenizer), so it loads with ``AutoModelForMaskedLM.from_pretrained(RUN)``. Every
random draw depends on the seed and the step alone, so a resumed run continues with the same
data order and masks, and ends with the same weights as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sslcli.engine.atomic import write_text_atomic
from sslcli.engine.checkpoint import (
    CHECKPOINTS_FOLDER,
    check_compatible,
    load_checkpoint,
    resolve_resume,
    save_run_checkpoint,
)
from sslcli.engine.metrics_log import MetricsLog
from sslcli.engine.optim import warmup_cosine
from sslcli.engine.progress import progress_bar
from sslcli.engine.run_lock import LOCK_FILE, run_folder_lock
from sslcli.engine.signals import catch_stop_signals
from sslcli.errors import runtime_error, usage_error
from sslcli.text.corpus import build_blocks, corpus_digest, corpus_files
from sslcli.text.head import logits_at
from sslcli.text.init_model import initial_model
from sslcli.text.loading import position_count, quiet_transformers
from sslcli.text.masking import IGNORED_LABEL, MaskingVocabulary, mask_tokens, masking_vocabulary

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from sslcli.text.corpus import Blocks

SETTINGS_FILE = "train_mlm.json"
RESULT_FILE = "result.json"
EXPORT_DTYPES = ("fp32", "fp16", "bf16")
RESUME_KEYS = (
    "init",
    "tokenizer",
    "seq_len",
    "batch_size",
    "lr",
    "weight_decay",
    "warmup_steps",
    "mlm_probability",
    "whole_words",
    "freeze_word_embeddings",
    "seed",
    "heldout",
    "heldout_blocks",
    "corpus_digest",
)
"""Settings a resumed run must share with its checkpoint (``steps`` and ``minutes`` may
change: they say how far to go)."""
HELDOUT_SEED_OFFSET = 1_000_003
MAX_GRAD_NORM = 1.0


@dataclass(frozen=True)
class MLMConfig:
    corpus: str
    init: str
    tokenizer: str | None = None
    seq_len: int = 128
    batch_size: int = 32
    lr: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 100
    mlm_probability: float = 0.15
    whole_words: bool = False
    freeze_word_embeddings: bool = False
    steps: int | None = None
    minutes: float | None = None
    seed: int = 0
    heldout: float = 0.02
    heldout_blocks: int = 256
    eval_every: int = 200
    checkpoint_every: int = 500
    log_every: int = 10
    export_dtype: str = "fp32"
    device: str = "cpu"
    corpus_digest: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> None:
        if self.steps is None and self.minutes is None:
            raise usage_error("say how long to train", "give --steps N and/or --minutes M")
        positive = {
            "--steps": self.steps,
            "--minutes": self.minutes,
            "--seq-len": self.seq_len,
            "--batch-size": self.batch_size,
            "--lr": self.lr,
            "--eval-every": self.eval_every,
            "--checkpoint-every": self.checkpoint_every,
            "--heldout-blocks": self.heldout_blocks,
        }
        for option, value in positive.items():
            if value is not None and value <= 0:
                raise usage_error(f"{option} must be positive, got {value}")
        if not 0 < self.mlm_probability < 1:
            raise usage_error(
                f"--mlm-probability must be between 0 and 1, got {self.mlm_probability}"
            )
        if self.export_dtype not in EXPORT_DTYPES:
            raise usage_error(
                f"unknown --export-dtype {self.export_dtype!r}", f"use {', '.join(EXPORT_DTYPES)}"
            )


@dataclass
class MLMResult:
    step: int
    interrupted: bool
    start: str
    """Where training started (a fresh head added, from scratch, ...)."""
    loss: float | None = None
    heldout_loss: float | None = None
    heldout_accuracy: float | None = None
    tokens_per_s: float | None = None
    train_blocks: int = 0
    heldout_blocks: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@contextlib.contextmanager
def claimed_run(out: Path | None, resume: Path | None) -> Iterator[tuple[Path, Path | None]]:
    """The run folder and the checkpoint to resume from, the folder locked for this process
    meanwhile (see run_lock). A folder that holds anything is never reused, except to resume
    the run it holds."""
    checkpoint = resolve_resume(resume) if resume is not None else None
    if out is None:
        if checkpoint is None or checkpoint.parent.name != CHECKPOINTS_FOLDER:
            raise usage_error("say where the model goes", "give --out DIR")
        out = checkpoint.parent.parent
    resuming_here = checkpoint is not None and checkpoint.resolve().is_relative_to(out.resolve())
    if out.exists() and not out.is_dir():
        raise usage_error(f"--out {out} is a file", "choose a folder")
    with run_folder_lock(out):
        if not resuming_here and any(p.name != LOCK_FILE for p in out.iterdir()):
            raise usage_error(
                f"{out} is not empty: a run folder is never overwritten",
                f"continue its run with --resume {out}, or choose another --out",
            )
        yield out, checkpoint


def train_mlm(
    config: MLMConfig,
    run_dir: Path,
    checkpoint: Path | None = None,
    show_progress: bool = True,
    announce: Callable[[str], None] | None = None,
) -> MLMResult:
    """Train, checkpoint, export; Ctrl-C/SIGTERM stop after the step with a checkpoint.
    ``announce`` receives one sentence on where training starts, before the first step."""
    config.validate()
    files = corpus_files(Path(config.corpus))
    config = _with_digest(config, corpus_digest(files))
    start = initial_model(config.init, config.tokenizer, config.seq_len, config.seed)
    _check_positions(start.model, config.seq_len)
    blocks = build_blocks(
        files,
        start.tokenizer,
        config.seq_len,
        config.heldout,
        config.heldout_blocks,
        config.seed,
        show_progress,
    )
    run = _Run(config, run_dir, start.model, masking_vocabulary(start.tokenizer), blocks)
    description = start.description
    if checkpoint is not None:
        run.resume(checkpoint)
        description = f"resuming {checkpoint} at step {run.step}"
    if announce is not None:
        announce(description)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_text_atomic(run_dir / SETTINGS_FILE, json.dumps(config.as_dict(), indent=2))
    result = run.fit(description, show_progress)
    export_model(run.model, start.tokenizer, run_dir, config.export_dtype)
    write_text_atomic(run_dir / RESULT_FILE, json.dumps(result.as_dict(), indent=2))
    return result


def _check_positions(model: PreTrainedModel, seq_len: int) -> None:
    """Refuse blocks longer than the position table before anything is written in the run
    folder: the first step would fail, and a settings file left behind blocks the retry."""
    positions = position_count(model)
    if positions is not None and seq_len > positions:
        raise usage_error(
            f"--seq-len {seq_len} is longer than the model's {positions} positions",
            f"use --seq-len {positions} or less",
        )


def _with_digest(config: MLMConfig, digest: str) -> MLMConfig:
    return MLMConfig(**{**config.as_dict(), "corpus_digest": digest})


class _Run:
    def __init__(
        self,
        config: MLMConfig,
        run_dir: Path,
        model: PreTrainedModel,
        vocabulary: MaskingVocabulary,
        blocks: Blocks,
    ) -> None:
        import torch

        self.config = config
        self.run_dir = run_dir
        self.vocabulary = vocabulary
        self.blocks = blocks
        self.steps_per_epoch = len(blocks.train) // config.batch_size
        if self.steps_per_epoch < 1:
            raise usage_error(
                f"the corpus gives {len(blocks.train)} training blocks, fewer than one batch "
                f"of {config.batch_size}",
                "give more text, or a smaller --batch-size or --seq-len",
            )
        self.device = torch.device(config.device)
        self.model = model.to(self.device)
        if config.freeze_word_embeddings:
            self.model.get_input_embeddings().weight.requires_grad_(False)
        self.optimizer = torch.optim.AdamW(
            _parameter_groups(self.model, config.weight_decay), lr=config.lr
        )
        self.step = 0
        self.saved_step: int | None = None
        self.metrics_log = MetricsLog(self.run_dir)
        self.heldout = self._mask_heldout()
        self._epoch_order: tuple[int, torch.Tensor] | None = None

    def resume(self, path: Path) -> None:
        checkpoint = load_checkpoint(path)
        state = checkpoint.trainer_state or {}
        if "optimizer" not in state:
            raise usage_error(
                f"{path} is not a train-mlm checkpoint (it holds no trainer state)",
                "give the run folder or one of its checkpoints/step-* folders",
            )
        check_compatible(checkpoint.config, self.config.as_dict(), RESUME_KEYS)
        self.model.load_state_dict(checkpoint.weights)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.metrics_log.forget_after(self.step)

    def fit(self, start: str, show_progress: bool) -> MLMResult:
        config = self.config
        result = MLMResult(
            self.step,
            False,
            start,
            train_blocks=len(self.blocks.train),
            heldout_blocks=len(self.blocks.heldout),
        )
        began = time.monotonic()
        deadline = began + config.minutes * 60 if config.minutes is not None else None
        tokens = seconds = 0.0
        shown: dict[str, str] = {}
        with (
            catch_stop_signals() as stop,
            progress_bar("train-mlm", config.steps, "step", enabled=show_progress) as bar,
        ):
            bar.advance(self.step)
            while not self._finished(deadline):
                started = time.perf_counter()
                loss = self._train_step()
                self.step += 1
                seconds += time.perf_counter() - started
                tokens += config.batch_size * config.seq_len
                if loss is not None:
                    result.loss = loss
                record: dict[str, float] = {}
                if self.step % config.log_every == 0:
                    result.tokens_per_s = tokens / seconds
                    record = {} if loss is None else {"loss": loss}
                    record |= {"lr": self._lr(self.step - 1), "tokens_per_s": result.tokens_per_s}
                    tokens = seconds = 0.0
                if self.step % config.eval_every == 0:
                    record |= self._evaluate(result)
                if record:
                    self.metrics_log.append({"step": self.step} | record)
                if result.tokens_per_s is not None:
                    shown["tok/s"] = f"{result.tokens_per_s:,.0f}"
                if result.heldout_accuracy is not None:
                    shown["heldout acc"] = f"{result.heldout_accuracy:.3f}"
                losses = {} if result.loss is None else {"loss": result.loss}
                bar.advance(1, **losses, **shown)
                if stop.requested:
                    result.interrupted = not self._finished(deadline)
                    break
                if self.step % config.checkpoint_every == 0:
                    self._save()
        if self.step % config.eval_every != 0 or result.heldout_accuracy is None:
            final = self._evaluate(result)
            if final:
                self.metrics_log.append({"step": self.step} | final)
        self._save()
        result.step = self.step
        return result

    def _finished(self, deadline: float | None) -> bool:
        reached = self.config.steps is not None and self.step >= self.config.steps
        return reached or (deadline is not None and time.monotonic() >= deadline)

    def _lr(self, step: int) -> float:
        """Linear warm-up, then cosine decay to 0 at ``--steps``; constant without ``--steps``."""
        config = self.config
        if config.steps is None and step >= config.warmup_steps:
            return config.lr
        return warmup_cosine(
            step, config.steps or config.warmup_steps, config.warmup_steps, config.lr
        )

    def _batch(self, step: int) -> torch.Tensor:
        """The blocks of a global step: epoch ``step // steps_per_epoch`` in its seeded order."""
        import torch

        epoch, index = divmod(step, self.steps_per_epoch)
        if self._epoch_order is None or self._epoch_order[0] != epoch:
            generator = torch.Generator().manual_seed(self.config.seed * 7919 + epoch)
            self._epoch_order = (epoch, torch.randperm(len(self.blocks.train), generator=generator))
        size = self.config.batch_size
        chosen = self._epoch_order[1][index * size : (index + 1) * size]
        return self.blocks.train[chosen].long()

    def _train_step(self) -> float | None:
        """One optimiser step; its loss, or None when the batch drew no masked token: such a
        batch has nothing to predict (its mean loss would be 0/0), so the step trains nothing.
        The masks depend on the seed and step alone, so a resumed run skips the same steps."""
        import torch

        step_seed = self.config.seed * 1_000_000_007 + self.step
        torch.manual_seed(step_seed)  # dropout: the same at this step in any resumed run
        inputs, labels = mask_tokens(
            self._batch(self.step),
            self.vocabulary,
            self.config.mlm_probability,
            torch.Generator().manual_seed(step_seed),
            self.config.whole_words,
        )
        if not (labels != IGNORED_LABEL).any():
            return None
        for group in self.optimizer.param_groups:
            group["lr"] = self._lr(self.step)
        self.model.train()
        loss, _ = self._loss(inputs, labels)
        if not torch.isfinite(loss):
            raise runtime_error(
                f"the loss became {loss.item()} at step {self.step + 1}; training stopped",
                f"the last good checkpoint is in {self.run_dir / CHECKPOINTS_FOLDER}; "
                "lower --lr, then --resume",
            )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), MAX_GRAD_NORM)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return loss.item()

    def _loss(self, inputs: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Mean cross-entropy over the masked positions, and how many of them were right."""
        import torch

        rows, columns = (labels != IGNORED_LABEL).nonzero(as_tuple=True)
        logits = logits_at(self.model, inputs.to(self.device), None, rows, columns)
        targets = labels[rows, columns].to(self.device)
        loss = torch.nn.functional.cross_entropy(logits.float(), targets)
        return loss, int((logits.argmax(dim=-1) == targets).sum())

    def _mask_heldout(self) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        generator = torch.Generator().manual_seed(self.config.seed + HELDOUT_SEED_OFFSET)
        return mask_tokens(
            self.blocks.heldout.long(),
            self.vocabulary,
            self.config.mlm_probability,
            generator,
            self.config.whole_words,
        )

    def _evaluate(self, result: MLMResult) -> dict[str, float]:
        """Held-out masked-token loss and accuracy (the same masks at every evaluation); none
        when the held-out masks hide no token (nothing was predicted, nothing measured)."""
        import torch

        inputs, labels = self.heldout
        total_loss, correct, count = 0.0, 0, 0
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(inputs), self.config.batch_size):
                batch_labels = labels[start : start + self.config.batch_size]
                masked = int((batch_labels != IGNORED_LABEL).sum())
                if masked == 0:
                    continue
                loss, right = self._loss(inputs[start : start + len(batch_labels)], batch_labels)
                total_loss += loss.item() * masked
                correct += right
                count += masked
        if count == 0:
            return {}
        result.heldout_loss = total_loss / count
        result.heldout_accuracy = correct / count
        return {"heldout_loss": result.heldout_loss, "heldout_accuracy": result.heldout_accuracy}

    def _save(self) -> None:
        if self.saved_step == self.step:
            return
        state = {"step": self.step, "optimizer": self.optimizer.state_dict()}
        try:
            save_run_checkpoint(
                self.run_dir,
                self.step,
                self.model.state_dict(),
                self.config.as_dict() | {"step": self.step},
                state,
            )
        except OSError as error:
            raise runtime_error(
                f"cannot write a checkpoint in {self.run_dir}: {error}",
                "free disk space, then --resume from the last checkpoint",
            ) from error
        self.saved_step = self.step


def _parameter_groups(model: PreTrainedModel, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on matrices only (not on biases or normalisation weights)."""
    trainable = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for _, p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for _, p in trainable if p.ndim < 2], "weight_decay": 0.0},
    ]


def export_model(model: PreTrainedModel, tokenizer: Any, run_dir: Path, dtype: str) -> None:
    """``save_pretrained`` of the model (in ``dtype``) and tokenizer into ``run_dir``: written
    in a temporary folder, then each file renamed into place."""
    import torch

    torch_dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[dtype]
    exported = copy.deepcopy(model).to("cpu", torch_dtype)
    with (
        tempfile.TemporaryDirectory(dir=run_dir, prefix=".export-") as folder,
        quiet_transformers(),
    ):
        exported.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        for file in sorted(Path(folder).iterdir()):
            os.replace(file, run_dir / file.name)
