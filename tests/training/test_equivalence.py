"""2 processes x batch B train like 1 process x batch 2B over several steps, for every method.

Each method trains 8 steps: 4 epochs of 32 real digits at a global batch of 16, so three
per-epoch reshuffles are crossed, with LARS at the method's own learning rate, a one-epoch
warm-up then the cosine decay, and (BYOL, MoCo, train-latent ``--target ema``) the momentum
target on its schedule; DINO and LeJEPA on a ViT with 2 local crops of another size, DINO
with its EMA teacher, its centre, its teacher-temperature warm-up, its last layer frozen for
the first epoch and its weight-decay cosine (a centre averaged over one process's batch, or
SIGReg's sums left local or all-reduced without their gradient, as lightly's issue 1920 had
it, each fail here); iBOT on DINO with the masks of the global batch dealt to the processes
and its patch centre; distillation from a teacher trained here; masked latent prediction with
I-JEPA's masks of the global batch dealt to the processes; MAE with its random masks
of the global batch dealt alike; a video run's past clips and
future frames (6 sample videos) dealt as images are. The 1-process runs are the
real command line. The 2-process runs
take the request that command line built, resolved for 2 processes as ``--cpu-procs 2``
resolves it, and run the same worker in ONE group of 2 spawned processes, every method in
turn: a spawn per method would cost more than the training.

Compared, for each method: the learning rate and the loss at every logged step; the final
checkpoint (weights, momentum targets, BatchNorm running statistics); and every rank ending
with rank 0's state, bit for bit, which rank 0's checkpoint alone cannot show: a rank whose
EMA target stops following pulls the averaged gradients only slightly (under the tolerance
below), but its own targets are far off.

Training is chaotic in float rounding: a ReLU whose input sits at 0 goes either way on a
difference of one rounding, and from then on the runs see slightly different gradients. A
1-process run whose initial weights were multiplied by 1 + 1e-7 x noise ends up to 7e-3 of
how far training moved a tensor away from the unperturbed run; at 5x the methods' learning
rates up to 4e-2, with Barlow Twins' loss 0.5% away, hence their own rates here. The
2-process runs also normalise with GlobalBatchNorm (float64 sums) where the 1-process runs
have torch's BatchNorm (float32 sums, whose input gradients came out up to 2e-3 away from
float64's at some steps on these nearly collapsed embeddings); at these learning rates that
stays inside the same bounds. The tolerances below sit above all that, and far below what
the bugs do.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import sslcli.training.run
from sslcli.augment.presets import PRESETS
from sslcli.cli.app import app
from sslcli.engine.checkpoint import load_checkpoint, resolve_resume
from sslcli.engine.launch import launch, plan_launch
from sslcli.engine.runtime import Runtime, seed_everything
from sslcli.engine.trainer import Trainer, TrainResult
from sslcli.methods import METHODS
from sslcli.training.config import TrainingConfig, TrainingRequest, resolve_config
from sslcli.training.views import ViewBatches
from sslcli.training.worker import train_worker
from tests.conftest import SAMPLE_DATA, copy_digits

SMALL_HEADS = ("--projector-hidden-dim", "64", "--projector-dim", "64")
VIT = ("--backbone", "vit-tiny", "--patch-size", "4", "--local-crops", "2", "--optimizer", "adamw")
"""Given after the common options below: the later value of an option is the one taken."""
SMALL_DINO_HEAD = ("--prototypes", "64", "--projector-hidden-dim", "64", "--projector-dim", "32")
RUNS = {
    "simclr": ("train-siamese", "--method", "simclr", *SMALL_HEADS),
    "moco": ("train-siamese", "--method", "moco", *SMALL_HEADS),
    "byol": ("train-siamese", "--method", "byol", *SMALL_HEADS),
    "simsiam": ("train-siamese", "--method", "simsiam", *SMALL_HEADS),
    "barlow": ("train-siamese", "--method", "barlow", *SMALL_HEADS),
    "vicreg": ("train-siamese", "--method", "vicreg", *SMALL_HEADS),
    # ViTs (patch 4) with 2 global 16 px + 2 local 8 px crops, AdamW, the teacher's
    # temperature warm-up, its frozen last layer and the weight-decay cosine crossed
    "dino": ("train-siamese", "--method", "dino", *VIT, *SMALL_DINO_HEAD),
    # iBOT on DINO: the global batch's masks dealt to the processes, the patch centre
    "ibot": ("train-siamese", "--method", "ibot", *VIT, *SMALL_DINO_HEAD),
    # SGD: the ViT's last LayerNorm bias reaches the loss through the projector's BatchNorm
    # alone, which removes it, so its gradient is rounding, and AdamW's steps of about the
    # learning rate whatever the gradient's size make that rounding a random walk
    "lejepa": (
        "train-siamese",
        "--method",
        "lejepa",
        *VIT,
        "--optimizer",
        "sgd",
        "--lr",
        "1.0",
        "--projector-hidden-dim",
        "64",
        "--projector-dim",
        "16",
    ),
    # distillation from the SimCLR run above (trained first: the runs go in this order)
    "distill": ("train-siamese", "--method", "distill", "--teacher", "SIMCLR_RUN"),
    "latent-online": ("train-latent", *SMALL_HEADS, "--target", "online"),
    "latent-ema": ("train-latent", *SMALL_HEADS, "--target", "ema"),
    # I-JEPA's masks of the global batch dealt to the processes, z inferred per image, the
    # EMA target encoder, the weight-decay cosine
    "masked-latent": (
        "train-latent", "--objective", "masked", "--backbone", "vit-tiny", "--patch-size", "4",
        "--optimizer", "adamw", "--latent-dim", "4",
    ),
    # MAE: its random masks of the global batch dealt to the processes, the pixel targets
    "mae": (
        "train-latent", "--objective", "masked", "--predict", "pixels", "--backbone",
        "vit-tiny", "--patch-size", "4", "--optimizer", "adamw",
    ),
    # a video's past clip (2 frames) and the frame 0.5 s later, at 2 fps: 6 sample videos x 6
    # pairs, the temporal mix of the clip's frames, z inferred per pair
    "latent-video": ("train-latent", "--pairs", "future", "--fps", "2", *SMALL_HEADS),
}  # fmt: skip
VIDEO_RUNS = {"latent-video"}
"""Runs on 6 of the sample videos instead of the digits."""
STEPS = 8
LOGGED = [2, 4, 6, 8]
"""2 steps an epoch, so the loss is logged at the end of each epoch."""

MOVED_SHARE = 5e-2
"""How far a tensor of the 2-process run may be from the 1-process run's: this share of how
far training moved it (the L2 norm of final - initial). Measured over 5 seeds: at most
8.6e-3. A rank keeping the first epoch's data order, or the learning rate scaled by the
per-process batch, put half the tensors 0.5 (median) of it off; BatchNorm running
statistics of the local batch put them 0.07-0.1 of it off (and rank 1's differ from rank
0's)."""
LOSS_SHARE = 1e-3
"""Relative, for the loss at a logged step; measured over 5 seeds: at most 2.2e-4."""
FLOOR = 1e-6
"""Plus this much per element (RMS) for tensors that training barely moves, whose
differences are rounding alone: biases followed by a BatchNorm or a standardisation (their
gradient is 0 up to rounding) and targets at momentum near 1."""


def test_every_method_is_compared_latent_with_both_targets() -> None:
    methods = {name if name in METHODS else name.rsplit("-", 1)[0] for name in RUNS}
    assert methods == set(METHODS.names())
    assert {"latent-online", "latent-ema"} <= set(RUNS)


class _InitialKept(Trainer):
    """The 1-process runs' trainer, keeping the initial state: to measure how far training
    moved each tensor."""

    initial: ClassVar[dict[str, dict[str, torch.Tensor]]] = {}

    def __init__(self, runtime: Runtime, module: torch.nn.Module, *args: Any) -> None:
        _optimizer_factory, _schedule, run_dir, *_ = args
        _InitialKept.initial[str(run_dir)] = _cloned(module.state_dict())
        super().__init__(runtime, module, *args)


class _EveryRankKept(Trainer):
    """The 2-process runs' trainer: every rank keeps its final state next to the run."""

    def fit(self, batches: Any) -> TrainResult:
        result = super().fit(batches)
        state = {"module": self.module.state_dict(), "optimizer": self.optimizer.state_dict()}
        torch.save(state, self.run_dir.with_name(f"two-rank{self.runtime.rank}.pt"))
        return result


def _train_every_method(runtime: Runtime, jobs: list[tuple[TrainingConfig, Path]]) -> None:
    """Each process of the 2-process group: every run in turn, as ``train-siamese`` runs one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sslcli.engine.trainer.Trainer", _EveryRankKept)
        for config, run_dir in jobs:
            seed_everything(runtime.seed)  # as make_runtime seeds a process before its run
            train_worker(runtime, config, run_dir, None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every run of RUNS trained with 1 process (``NAME/one``) and 2 (``NAME/two``)."""
    work = tmp_path_factory.mktemp("equivalence")
    digits = copy_digits(work / "digits")
    videos = work / "videos"
    videos.mkdir()
    for path in sorted((SAMPLE_DATA / "videos" / "bounce").glob("*.mp4"))[:6]:
        shutil.copy(path, videos)
    requests: dict[str, TrainingRequest] = {}
    run_training = sslcli.training.run.run_training

    def recording(kind: str, request: TrainingRequest, devices: Any, out: Path, *rest: Any) -> Any:
        requests[out.parent.name] = request
        return run_training(kind, request, devices, out, *rest)

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sslcli.training.run.run_training", recording)
        patch.setattr("sslcli.engine.trainer.Trainer", _InitialKept)
        # one thread, as each of the 2 spawned processes has on 2 cores; OpenMP threads on
        # these tiny tensors only wait for each other on a busy machine (5-10x slower)
        torch.set_num_threads(1)
        try:
            for name, (command, *extra) in RUNS.items():
                options = [
                    "--backbone", "tiny-cnn", "--size", "16", "--batch-size", "16",
                    "--epochs", str(STEPS // 2), "--optimizer", "lars", "--warmup-epochs", "1",
                    "--gpus", "0", "--cache-dir", str(work / "cache"),
                    "--out", str(work / name / "one"),
                ]  # fmt: skip
                extra = [str(work / "simclr" / "one") if e == "SIMCLR_RUN" else e for e in extra]
                data = videos if name in VIDEO_RUNS else digits
                result = CliRunner().invoke(app, [command, str(data), *options, *extra])
                assert result.exit_code == 0, result.output
        finally:
            torch.set_num_threads(threads)
    jobs = [(resolve_config(requests[name], 2), work / name / "two") for name in RUNS]
    config = jobs[0][0]
    launch(plan_launch(0, 2, 0, {}), config.precision, config.seed, _train_every_method, jobs)
    return work


@pytest.mark.parametrize("name", RUNS)
def test_two_processes_train_like_one_over_several_steps(trained: Path, name: str) -> None:
    one, two = trained / name / "one", trained / name / "two"
    logged_one, logged_two = _logged(one), _logged(two)
    assert list(logged_one) == list(logged_two) == LOGGED
    for step, record in logged_one.items():
        assert logged_two[step]["lr"] == record["lr"], f"lr at step {step}"
        expected = pytest.approx(record["loss"], rel=LOSS_SHARE, abs=1e-6)
        assert logged_two[step]["loss"] == expected, f"loss at step {step}"

    final_one, final_two = (load_checkpoint(resolve_resume(run)) for run in (one, two))
    assert final_one.config["step"] == final_two.config["step"] == STEPS
    assert final_two.config["world_size"] == 2
    initial = _InitialKept.initial[str(one)]
    assert set(final_two.weights) == set(final_one.weights) == set(initial)
    for key, tensor in final_one.weights.items():
        _assert_trained_alike(final_two.weights[key], tensor, initial[key], key)
    # (the optimiser's momentum is not compared with the 1-process run's: it is the latest
    # gradients, not their sum, and a ReLU flipped by rounding moves it by up to 1%)

    # every rank holds what rank 0 saved, optimiser state too: all-reduced gradients, the
    # same EMA, the same global BatchNorm statistics, so the same bits
    momentum_two = _momentum(final_two.trainer_state["optimizer"])
    ranks = [torch.load(two.with_name(f"two-rank{rank}.pt")) for rank in (0, 1)]
    for rank, state in enumerate(ranks):
        for key, tensor in final_two.weights.items():
            _assert_same_bits(state["module"][key], tensor, f"rank {rank}'s {key}")
        for index, buffer in _momentum(state["optimizer"]).items():
            _assert_same_bits(buffer, momentum_two[index], f"rank {rank}'s momentum {index}")


def test_each_epoch_orders_every_image_anew_and_the_ranks_split_each_batch() -> None:
    """What the runs above rest on, for every epoch: a bug the 1- and 2-process runs share
    (no reshuffle at all, say) cannot show in their comparison."""
    one = _indices(world_size=1, rank=0)
    ranks = [_indices(world_size=2, rank=rank) for rank in (0, 1)]
    for step, batch in enumerate(one):
        assert torch.equal(torch.cat([ranks[0][step], ranks[1][step]]), batch), step
    epochs = [torch.cat(one[epoch * 4 : (epoch + 1) * 4]).tolist() for epoch in range(3)]
    assert all(sorted(order) == list(range(32)) for order in epochs)
    assert epochs[0] != epochs[1] != epochs[2] != epochs[0]


def _indices(world_size: int, rank: int) -> list[torch.Tensor]:
    """The images of a rank's share of each of 12 steps: 3 epochs of 32 images, batch 8."""
    # local_indices reads the seed, the global and per-process batch and the rank alone (the
    # constructor reads the local crops)
    config = SimpleNamespace(seed=0, batch_size=8, per_device_batch=8 // world_size, local_crops=0)
    runtime = Runtime(torch.device("cpu"), "fp32", 0, rank=rank, world_size=world_size)
    pixels = np.zeros((32, 1, 1, 3), np.uint8)
    batches = ViewBatches(pixels, config, PRESETS.create("simclr"), runtime, steps_per_epoch=4)
    return [batches.local_indices(step) for step in range(12)]


def _logged(run: Path) -> dict[int, dict]:
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return {record["step"]: record for record in records if "loss" in record}


def _momentum(optimizer_state: dict) -> dict[str, torch.Tensor]:
    """The optimiser's moments: SGD's and LARS's momentum, AdamW's two averages."""
    return {
        f"{index} {name}": moment
        for index, state in optimizer_state["state"].items()
        for name, moment in state.items()
        if name in ("momentum_buffer", "exp_avg", "exp_avg_sq")
    }


def _assert_trained_alike(
    two: torch.Tensor, one: torch.Tensor, start: torch.Tensor, key: str
) -> None:
    if not one.is_floating_point():  # num_batches_tracked
        assert torch.equal(two, one), key
        return
    moved = (one - start).norm().item()
    difference = (two - one).norm().item()
    allowed = MOVED_SHARE * moved + FLOOR * one.numel() ** 0.5
    assert difference <= allowed, (
        f"{key}: the 2-process run is {difference:.3g} from the 1-process run's, "
        f"{difference / max(moved, 1e-30):.2g} of the {moved:.3g} that training moved it"
    )


def _assert_same_bits(actual: torch.Tensor, expected: torch.Tensor, key: str) -> None:
    torch.testing.assert_close(
        actual, expected, rtol=0, atol=0, msg=lambda message: f"{key}: {message}"
    )


def _cloned(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {key: tensor.detach().clone() for key, tensor in state.items()}
