"""Peak memory per process of a ResNet-18 training step with global-batch BatchNorm (gloo, CPU).

For 1, 2 and 4 CPU processes sharing one fixed GLOBAL batch, each process runs forward and
backward of a torchvision ResNet-18 whose BatchNorms are:

- ``torch``: plain ``nn.BatchNorm2d``, each process's own statistics (a floor: not what a
  distributed run may use);
- ``old``: the autograd-graph GlobalBatchNorm sslcli had before the explicit backward (a
  private copy below, the baseline): it kept a float64 copy and float32 intermediates of
  every BatchNorm input for backward;
- ``new``: ``sslcli.engine.batchnorm.GlobalBatchNorm`` (via ``synchronise_batchnorm``), which
  keeps only the input and per-channel statistics, as torch's SyncBatchNorm does.

Memory is each process's peak resident set (``resource.getrusage(...).ru_maxrss``), whole
("peak") and above what the process held once its model was built ("step"). Every
configuration runs in a fresh interpreter, so no peak carries over from another one.

Run: python benchmarks/batchnorm_memory.py --size 112 --global-batch 64
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

from sslcli.engine.batchnorm import synchronise_batchnorm
from sslcli.engine.collectives import all_reduce_sum
from sslcli.engine.launch import launch, plan_launch
from sslcli.engine.runtime import Runtime

IMPLEMENTATIONS = ("torch", "old", "new")
PROCESSES = (1, 2, 4)
STEPS = 2


class _OldGlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """The baseline: sslcli's GlobalBatchNorm before its explicit backward (autograd ops)."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        values = input.float()
        wide = values.double()
        local = torch.cat(
            [wide.sum(dims), (wide * wide).sum(dims), wide.new_tensor([values.numel() / channels])]
        )
        total = all_reduce_sum(local)
        count = total[-1]
        mean = total[:channels] / count
        variance = (total[channels : 2 * channels] / count - mean * mean).clamp_(min=0)
        mean, variance, count = mean.float(), variance.float(), count.float()
        centred = values - mean.view(shape)
        with torch.no_grad():  # running statistics, as before
            momentum = self.momentum
            self.running_mean.mul_(1 - momentum).add_(momentum * mean)
            self.running_var.mul_(1 - momentum).add_(momentum * variance * count / (count - 1))
        normalised = centred * torch.rsqrt(variance.view(shape) + self.eps)
        normalised = normalised * self.weight.view(shape) + self.bias.view(shape)
        return normalised.to(input.dtype)


def _to_old(module: nn.Module) -> nn.Module:
    if isinstance(module, nn.BatchNorm2d):
        replacement = _OldGlobalBatchNorm(module.num_features, module.eps, module.momentum)
        replacement.load_state_dict(module.state_dict())
        return replacement
    for name, child in module.named_children():
        setattr(module, name, _to_old(child))
    return module


def _model(implementation: str) -> nn.Module:
    import torchvision

    model = torchvision.models.resnet18(weights=None)
    model.fc = nn.Identity()
    if implementation == "old":
        return _to_old(model)
    if implementation == "new":
        return synchronise_batchnorm(model, torch.device("cpu"))
    return model


def _resident_mib() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _measure(runtime: Runtime, implementation: str, size: int, batch: int, out: Path) -> None:
    """Forward and backward of this rank's share of the global batch; write its peak memory."""
    torch.manual_seed(runtime.rank)
    model = _model(implementation).train()
    images = torch.randn(batch // runtime.world_size, 3, size, size)
    before = _resident_mib()
    for _ in range(STEPS):
        model(images).square().mean().backward()
        model.zero_grad(set_to_none=True)
    peak = _peak_mib()
    record = {"peak": peak, "step": peak - before}
    (out / f"rank{runtime.rank}.json").write_text(json.dumps(record))


def _one_configuration(implementation: str, processes: int, size: int, batch: int) -> dict:
    """Run one configuration in a fresh interpreter; each of its processes' figures."""
    with tempfile.TemporaryDirectory() as folder:
        command = [sys.executable, __file__, "--child", implementation, str(processes)]
        command += ["--size", str(size), "--global-batch", str(batch), "--out", folder]
        subprocess.run(command, check=True)
        return [json.loads(path.read_text()) for path in sorted(Path(folder).glob("rank*.json"))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--global-batch", type=int, default=64)
    parser.add_argument("--child", nargs=2, metavar=("IMPLEMENTATION", "PROCESSES"))
    parser.add_argument("--out", type=Path)
    options = parser.parse_args()
    if options.child:
        implementation, processes = options.child[0], int(options.child[1])
        plan = plan_launch(0, processes, 0, {})
        args = (implementation, options.size, options.global_batch, options.out)
        launch(plan, "fp32", 0, _measure, *args)
        return
    print(f"ResNet-18, {options.size} px, global batch {options.global_batch}, fp32, gloo")
    print(
        "| processes | BatchNorm | peak / process (MiB) | step / process (MiB) | total peak (MiB) |"
    )
    print("| --- | --- | --- | --- | --- |")
    steps = {}
    for processes in PROCESSES:
        for implementation in IMPLEMENTATIONS:
            ranks = _one_configuration(
                implementation, processes, options.size, options.global_batch
            )
            peak = max(rank["peak"] for rank in ranks)
            step = max(rank["step"] for rank in ranks)
            total = sum(rank["peak"] for rank in ranks)
            steps[processes, implementation] = step
            print(f"| {processes} | {implementation} | {peak:.0f} | {step:.0f} | {total:.0f} |")
    print()
    for processes in PROCESSES:
        old, new = steps[processes, "old"], steps[processes, "new"]
        print(f"{processes} process(es): step memory old / new = {old / new:.2f}")
    for implementation in ("old", "new"):
        one, four = steps[1, implementation], steps[4, implementation]
        print(f"{implementation}: step memory 1 process / 4 processes = {one / four:.2f}")


if __name__ == "__main__":
    main()
